from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the benchmarks refuse to write a result file from an uncommitted tree (benchmarks/measurement.py: provenance);
# the suite runs them at toy size in a working tree, so it allows one (their files then say "dirty": true)
os.environ.setdefault("PINMEM_ALLOW_DIRTY", "1")

import torch  # noqa: E402

# The models in the tests are tiny: one thread is as fast as two, and on a 2-core machine shared with the
# subprocesses some tests start (torchrun ranks), more threads than cores makes OpenMP spin (measured 10-40×).
torch.set_num_threads(1)


from pinmem.data.base import no_transform as identity_transform  # noqa: E402,F401

#: the benchmark scripts, importable by name (they import their shared helper, measurement.py, the same way)
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, so that the scripts behind the documented numbers run in the tests."""
    return importlib.import_module(name)


def optional_module(name: str, install: str) -> ModuleType:
    """Import a test dependency: skipped when missing in a bare ``pytest`` run, but a failure under ``make test``
    and CI (``PINMEM_STRICT_TESTS=1``), where every test dependency is installed and a silent skip would hide a
    broken install."""
    if os.environ.get("PINMEM_STRICT_TESTS") == "1":
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} is required under PINMEM_STRICT_TESTS=1 ({install}): {err}")
    return pytest.importorskip(name, reason=install)


@dataclass
class WrittenDataset:
    root: Path
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, list[np.ndarray]] = field(default_factory=dict)


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth RGB image (JPEG keeps it within a few grey levels)."""
    small = rng.integers(0, 256, size=(4, 6, 3)).astype(np.float32)
    import cv2

    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)


def random_train_ids(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blocky trainIds covering all 19 classes and ignore."""
    ids = np.arange(20, dtype=np.uint8)
    ids[19] = 255
    blocks = rng.permutation(np.resize(ids, 4 * 5)).reshape(4, 5)
    return np.kron(blocks, np.ones((height // 4, width // 5), dtype=np.uint8))[:height, :width]


@pytest.fixture
def write_dataset(tmp_path):
    """write_dataset(name, counts={"train": 2, "val": 1}, size=(40, 50), **writer_options) -> WrittenDataset"""
    from pinmem.data.writers import build_writer

    def _write(name: str, counts=None, size=(40, 50), seed=0, **options) -> WrittenDataset:
        counts = counts or {"train": 2, "val": 1}
        rng = np.random.default_rng(seed)
        writer = build_writer(name, tmp_path / name, **options)
        out = WrittenDataset(writer.root)
        for split, n in counts.items():
            for _ in range(n):
                image, label = smooth_image(rng, *size), random_train_ids(rng, *size)
                writer.write(split, image, label)
                out.images.setdefault(split, []).append(image)
                out.labels.setdefault(split, []).append(label)
        writer.finish()
        return out

    return _write
