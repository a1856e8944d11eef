"""Small example street scenes written in all six native formats.

A deliberately simple scene (sky, buildings, road with sidewalks, vegetation, poles, cars, people) with an exact
label map, drawn with OpenCV. It exists so that the loaders, `pinmem data check` and the tests run on real files
in every format without a download; each dataset gets its own colour cast so the domains differ.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pinmem.data.labels import IGNORE, PALETTE
from pinmem.data.writers import build_writer

#: per-dataset colour cast (multiplier per RGB channel) so that the six example domains look different
CASTS = {
    "gtav": (1.15, 1.0, 0.85), "synthia": (0.9, 1.05, 1.2), "cityscapes": (1.0, 1.0, 1.0),
    "bdd100k": (0.7, 0.7, 0.8), "mapillary": (1.1, 1.1, 1.0), "idd": (1.2, 1.05, 0.8),
}


def example_scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an RGB ``uint8`` image and its trainId map (255 on an unlabeled strip at the bottom)."""
    label = np.full((height, width), 10, dtype=np.uint8)  # sky
    horizon = int(height * rng.uniform(0.35, 0.5))
    x = 0
    while x < width:  # buildings, a wall or a fence now and then
        w = int(rng.integers(width // 10, width // 4))
        top = int(horizon - rng.uniform(0.1, 0.3) * height)
        cls = int(rng.choice([2, 2, 2, 3, 4]))
        label[top:horizon, x : x + w] = cls
        x += w
    label[horizon:] = 9  # terrain
    road = np.array([[width // 2 - 4, horizon], [width // 2 + 4, horizon], [width, height], [0, height]], np.int32)
    walk_l = np.array([[width // 2 - 4, horizon], [0, int(horizon + 0.35 * (height - horizon))], [0, height]])
    walk_r = np.array([[width // 2 + 4, horizon], [width, int(horizon + 0.35 * (height - horizon))],
                       [width, height]])
    cv2.fillPoly(label, [walk_l.astype(np.int32), walk_r.astype(np.int32)], 1)
    cv2.fillPoly(label, [road], 0)
    for _ in range(int(rng.integers(1, 4))):  # trees
        cx, r = int(rng.integers(0, width)), int(rng.integers(height // 12, height // 6))
        cv2.circle(label, (cx, horizon - r // 2), r, 8, -1)
    for _ in range(int(rng.integers(1, 3))):  # poles with a light or a sign
        px = int(rng.integers(0, width))
        top = int(horizon - 0.3 * height)
        cv2.rectangle(label, (px, top), (px + 2, horizon + height // 8), 5, -1)
        cv2.rectangle(label, (px - 3, top), (px + 5, top + height // 20), int(rng.choice([6, 7])), -1)
    for _ in range(int(rng.integers(1, 4))):  # vehicles on the road, people on the walk
        y = int(rng.uniform(horizon + 0.2 * (height - horizon), height - 0.1 * height))
        s = (y - horizon) / (height - horizon)
        cx = int(width / 2 + rng.uniform(-0.3, 0.3) * width * s)
        w, h = int(width * 0.18 * s) + 2, int(height * 0.12 * s) + 2
        cv2.rectangle(label, (cx - w // 2, y - h), (cx + w // 2, y), int(rng.choice([13, 13, 14, 15])), -1)
        px = int(rng.uniform(0, 0.15) * width) if rng.random() < 0.5 else int(rng.uniform(0.85, 1.0) * width)
        cv2.rectangle(label, (px, y - 2 * h), (px + max(2, w // 5), y), int(rng.choice([11, 11, 12])), -1)
    label[height - max(2, height // 20) :] = IGNORE  # the ego vehicle's bonnet, unlabeled
    colours = np.zeros((256, 3), dtype=np.float32)
    colours[:19] = PALETTE.astype(np.float32) * rng.uniform(0.6, 1.0, size=(19, 1))
    image = colours[label] + rng.normal(0.0, 8.0, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_examples(
    out: str | Path, num_train: int = 8, num_val: int = 4, size: tuple[int, int] = (256, 128), seed: int = 0
) -> dict[str, Path]:
    """Write ``num_train`` + ``num_val`` scenes for each of the six datasets under ``out/<dataset>``."""
    roots: dict[str, Path] = {}
    for d, (name, cast) in enumerate(CASTS.items()):
        rng = np.random.default_rng([seed, d])
        writer = build_writer(name, Path(out) / name)
        for split, count in (("train", num_train), ("val", num_val)):
            for _ in range(count):
                image, label = example_scene(rng, *size)
                image = np.clip(image * np.array(cast, dtype=np.float32), 0, 255).astype(np.uint8)
                writer.write(split, image, label)
        writer.finish()
        roots[name] = writer.root
    return roots
