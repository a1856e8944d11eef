"""Training-augmentation throughput on ONE core: a GTAV-size (1914×1052) image + label to a 768² crop.

    python benchmarks/bench_augmentation.py [--images 300] [--strong-jitter]

Prints images/s of the full ``TrainTransform`` (rescale ×U(0.5, 2), crop, flip, jitter, blur, normalise) and
the share of each stage, and writes them with the git commit and the command to
``results/measurements/bench_augmentation.json`` (``--out``). Target (issue 2): at least 25 images/s per core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

from pinmem.data.transforms import TrainTransform, apply_geometry, sample_geometry  # noqa: E402


def structured_pair(height: int = 1052, width: int = 1914, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A street-like scene: smooth colour gradients, class blocks and sensor noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 10, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    blocks = rng.integers(0, 20, size=(12, 20)).astype(np.uint8)
    label = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
    label[label == 19] = 255
    image += (label.astype(np.float32) * 7.0)[:, :, None] + rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def rate(fn, n: int) -> float:
    """Calls of ``fn`` per second of wall clock."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def cpu_rate(fn, n: int) -> float:
    """Calls of ``fn`` per CPU-second of this process (one thread): what one core of its own would give, when other
    jobs share the machine."""
    start = time.process_time()
    for i in range(n):
        fn(i)
    return n / (time.process_time() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="augmented images to time")
    parser.add_argument("--crop", type=int, default=768)
    parser.add_argument("--strong-jitter", action="store_true", help="the released always-on ColorJitter(0.8,..)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default results/measurements/bench_augmentation.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    record = start_record("bench_augmentation", argv, allow_dirty=args.allow_dirty)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    image, label = structured_pair()
    transform = TrainTransform(crop_size=args.crop, strong_jitter=args.strong_jitter)
    for i in range(5):  # warm-up
        transform(image, label, i)

    def geometry(i: int) -> None:
        rng = np.random.default_rng(i)
        apply_geometry(image, label, sample_geometry(rng, image.shape[:2], transform.crop_size, (0.5, 2.0)))

    full = rate(lambda i: transform(image, label, i), args.images)
    full_cpu = cpu_rate(lambda i: transform(image, label, i), args.images)
    unnormalised = rate(lambda i: transform.augment(image, label, i), args.images)
    geometric = rate(geometry, args.images)
    print(f"{transform!r}")
    print(f"input {image.shape[1]}x{image.shape[0]} -> crop {args.crop}x{args.crop}, 1 thread, {args.images} images")
    print(f"full TrainTransform: {full:.1f} images/s ({1000 / full:.1f} ms/image); per CPU-second: {full_cpu:.1f}")
    print(
        f"  geometry (rescale + crop): {1000 / geometric:.1f} ms; flip + jitter + blur: "
        f"{1000 / unnormalised - 1000 / geometric:.1f} ms; normalise: {1000 / full - 1000 / unnormalised:.1f} ms"
    )
    print(f"target >= 25 images/s: {'met' if full >= 25 else 'NOT met'} (wall clock), "
          f"{'met' if full_cpu >= 25 else 'NOT met'} (per CPU-second)")
    results = {"input": f"{image.shape[1]}x{image.shape[0]}", "crop": args.crop, "images": args.images,
               "strong_jitter": args.strong_jitter, "threads": 1, "images_per_s": round(full, 2),
               "images_per_cpu_s": round(full_cpu, 2),
               "ms_per_image": round(1000 / full, 2), "geometry_ms": round(1000 / geometric, 2),
               "flip_jitter_blur_ms": round(1000 / unnormalised - 1000 / geometric, 2),
               "normalise_ms": round(1000 / full - 1000 / unnormalised, 2), "target_images_per_s": 25}
    finish_record(record, results, args.out)
    return results


if __name__ == "__main__":
    main()
