"""Noise and stripe textures, shared by all scenes of one image size.

Drawing fresh Gaussian noise for every image is the slowest part of rendering, so each process keeps one bank
of noise fields per image size (from a fixed seed) and every scene takes a window at a random offset: fast and
still deterministic, since the offset comes from the scene's own generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

PAD = 96  # the bank is this much larger than the image in each direction


@dataclass(frozen=True)
class NoiseBank:
    fine: np.ndarray  # per-pixel noise, std 1
    coarse: np.ndarray  # mottling with features of about 1/24 of the width, std 1
    sensor: np.ndarray  # another per-pixel field for sensor noise, 3 channels


@lru_cache(maxsize=8)
def noise_bank(height: int, width: int) -> NoiseBank:
    rng = np.random.default_rng(20220619)
    h, w = height + PAD, width + PAD
    fine = rng.standard_normal((h, w), dtype=np.float32)
    cells = max(width // 24, 4)
    small = rng.standard_normal((h * cells // width + 3, cells + 3), dtype=np.float32)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    coarse = (coarse - coarse.mean()) / (coarse.std() + 1e-6)
    sensor = rng.standard_normal((h, w, 3), dtype=np.float32)
    for array in (fine, coarse, sensor):
        array.setflags(write=False)
    return NoiseBank(fine, coarse.astype(np.float32), sensor)


def window(array: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A ``height`` × ``width`` window of a bank field at a random offset (a view, not a copy)."""
    oy, ox = int(rng.integers(0, PAD + 1)), int(rng.integers(0, PAD + 1))
    return array[oy : oy + height, ox : ox + width]


def stripes(length: int, period: float, phase: float) -> np.ndarray:
    """A ±1 square wave of ``period`` pixels along an axis of ``length`` pixels."""
    t = (np.arange(length, dtype=np.float32) + phase) / max(period, 1.0)
    return np.where((t % 1.0) < 0.5, 1.0, -1.0).astype(np.float32)


@lru_cache(maxsize=8)
def radial(height: int, width: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners (for vignetting)."""
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (height / 2)
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (width / 2)
    r = (x[None, :] ** 2 + y[:, None] ** 2) / 2
    r.setflags(write=False)
    return r
