"""Training DataLoader throughput: images per second at 768² crops from GTAV-size (1914×1052) PNGs, per worker count.

Writes (once, into ``--cache``; reused afterwards) ``--images`` synthetic image/label pairs per domain in the
datasets' native layouts with pinmem's own writers (GTAV: RGB PNG + palette label PNG + ``split.mat``; SYNTHIA:
RGB PNG + 16-bit label PNG, at SYNTHIA's 1280×760), then builds the loader the trainer builds
(:func:`pinmem.data.build_training_dataset` with :class:`~pinmem.data.transforms.TrainTransform`, and
:func:`pinmem.data.sampling.build_train_loader`) and times ``--batches`` batches after ``--warmup`` untimed ones
(the untimed ones include the workers' start-up) for each of ``--workers``. One batch is ``--batch`` images per
domain × the domains, as one training iteration of one rank. Run::

    python benchmarks/bench_loader.py --workers 0 1 2
    python benchmarks/bench_loader.py --workers 0 1 2 --domains gtav synthia --strong-jitter

The default pair is GTAV twice (every image GTAV-size: the slower case); ``--domains gtav synthia`` is the G+S
protocol's pair. The JSON (``--out``) holds the git commit, the CPU count, the load average before the run and
the arguments, so that a number measured beside other jobs can be told apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_augmentation import structured_pair  # noqa: E402
from measurement import add_allow_dirty_argument, cpu_model, provenance  # noqa: E402

from pinmem.data import build_training_dataset  # noqa: E402
from pinmem.data.sampling import SamplerConfig, build_train_loader  # noqa: E402
from pinmem.data.transforms import TrainTransform  # noqa: E402
from pinmem.data.writers import build_writer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: native size (height, width) of each source dataset's frames
NATIVE_SIZE = {"gtav": (1052, 1914), "synthia": (760, 1280)}


def write_domain(name: str, root: Path, count: int, seed: int = 0) -> Path:
    """``count`` synthetic pairs of dataset ``name`` at its native size under ``root`` (skipped when a previous run
    left them complete: a ``.complete`` marker is written last)."""
    marker = root / ".complete"
    if marker.is_file() and marker.read_text().strip() == str(count):
        return root
    writer = build_writer(name, root)
    height, width = NATIVE_SIZE[name]
    for i in range(count):
        image, label = structured_pair(height, width, seed=seed * 10_000 + i)
        writer.write("train", image, label)
    writer.finish()
    marker.write_text(f"{count}\n")
    return root


def png_megabytes(root: Path) -> float:
    """Mean size (MB) of the RGB frames under ``root`` (GTAV ``images/``, SYNTHIA ``RGB/``)."""
    sizes = [p.stat().st_size for folder in ("images", "RGB") for p in (root / folder).glob("*.png")]
    return statistics.fmean(sizes) / 1e6 if sizes else 0.0


def build_sources(args: argparse.Namespace) -> dict[str, Any]:
    """The training sets, keyed by a distinct domain name per position (``gtav``, ``gtav_2``, …)."""
    sources: dict[str, Any] = {}
    for position, name in enumerate(args.domains):
        root = write_domain(name, args.cache / name, args.images, seed=NATIVE_SIZE[name][1])
        transform = TrainTransform(crop_size=args.crop, strong_jitter=args.strong_jitter and position == 0)
        key = name if name not in sources else f"{name}_{position + 1}"
        sources[key] = build_training_dataset(name, root, "train", transform)
    return sources


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``; 0 if it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def loader_cpu_seconds(workers: int) -> float:
    """CPU seconds spent so far by the loading: the worker processes', or this process's when ``workers == 0``."""
    if workers == 0:
        return time.process_time()
    return sum(_cpu_seconds(child) for child in _children(os.getpid()))


def measure(sources: dict[str, Any], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Images per second delivered by the training loader with ``workers`` worker processes."""
    total = args.warmup + args.batches
    config = SamplerConfig(epoch_length=max(args.images, args.batch), batch_per_domain=args.batch, seed=304,
                           iterations=total)
    start = time.perf_counter()
    loader = build_train_loader(sources, config, num_workers=workers, prefetch_factor=args.prefetch or None)
    cpu_start = loader_cpu_seconds(workers)
    batches = iter(loader)
    times: list[float] = []
    first = 0.0
    for i in range(total):
        t0 = time.perf_counter()
        batch = next(batches)
        now = time.perf_counter()
        if i == 0:
            first = now - start
        if i >= args.warmup:
            times.append(now - t0)
        shapes = {tuple(part["image"].shape) for part in batch.values()}
        assert shapes == {(args.batch, 3, args.crop, args.crop)}, shapes
    cpu = loader_cpu_seconds(workers) - cpu_start
    del batches, loader  # shuts the workers down
    per_batch = args.batch * len(sources)
    elapsed, images = sum(times), per_batch * len(times)
    return {
        "workers": workers,
        "images_per_s": images / elapsed,
        "images_per_s_per_worker": images / elapsed / max(workers, 1),
        # what one worker delivers on a core of its own: images per CPU-second of the loading processes over all
        # the batches, warm-up included (the sampler stops after them, so no prefetched batch is left uncounted)
        "loader_cpu_s": cpu,
        "images_per_cpu_s": per_batch * total / cpu if cpu > 0 else None,
        "batch_ms_median": 1000 * statistics.median(times),
        "first_batch_s": first,
        "timed_batches": len(times),
        "images_per_batch": per_batch,
    }


def extrapolate(results: list[dict[str, Any]], images_per_iteration: int, scale_to: int) -> dict[str, Any]:
    """``scale_to`` workers from the best measured per-worker rate, by wall clock and by CPU time (linear scaling,
    one core per worker assumed)."""
    with_workers = [r for r in results if r["workers"] > 0]
    out: dict[str, Any] = {"workers": scale_to, "assumes": "linear scaling, one core per worker"}
    for key, field in (("from_wall_clock", "images_per_s_per_worker"), ("from_cpu_time", "images_per_cpu_s")):
        rates = [r[field] for r in with_workers if r[field]]
        if rates:
            per_worker = max(rates)
            out[key] = {"per_worker_images_per_s": per_worker, "images_per_s": per_worker * scale_to,
                        "iterations_per_s": per_worker * scale_to / images_per_iteration}
    return out


def summary(results: list[dict[str, Any]], extrapolated: dict[str, Any], images_per_iteration: int) -> str:
    lines = [f"{'workers':>7s} {'images/s':>9s} {'per worker':>10s} {'per CPU-s':>9s} {'ms/batch':>9s} "
             f"{'first batch s':>13s}"]
    for r in results:
        per_cpu = f"{r['images_per_cpu_s']:9.2f}" if r["images_per_cpu_s"] else f"{'-':>9s}"
        lines.append(f"{r['workers']:7d} {r['images_per_s']:9.2f} {r['images_per_s_per_worker']:10.2f} {per_cpu} "
                     f"{r['batch_ms_median']:9.0f} {r['first_batch_s']:13.1f}")
    for key in ("from_wall_clock", "from_cpu_time"):
        if key in extrapolated:
            e = extrapolated[key]
            lines.append(f"{extrapolated['workers']} workers {key.replace('_', ' ')} "
                         f"({e['per_worker_images_per_s']:.2f} per worker, linear scaling assumed): "
                         f"{e['images_per_s']:.1f} images/s = "
                         f"{e['iterations_per_s']:.2f} iterations/s of {images_per_iteration} images")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts to time")
    parser.add_argument("--domains", nargs="+", default=["gtav", "gtav"], choices=sorted(NATIVE_SIZE),
                        help="source datasets, in order (the first gets --strong-jitter)")
    parser.add_argument("--images", type=int, default=16, help="synthetic pairs written per domain")
    parser.add_argument("--crop", type=int, default=768)
    parser.add_argument("--batch", type=int, default=4, help="images per domain per batch")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches (include the workers' start-up)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per worker count")
    parser.add_argument("--prefetch", type=int, default=0, help="prefetch_factor (0: the trainer's default, 2)")
    parser.add_argument("--strong-jitter", action="store_true", help="first domain: the released ColorJitter(0.8,..)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--scale-to", type=int, default=16, help="worker count to extrapolate to")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "bench_loader_cache")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "measurements" / "bench_loader.json")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    code = provenance(args.allow_dirty)  # refused before measuring, not after
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    sources = build_sources(args)
    results = []
    for workers in args.workers:
        results.append(measure(sources, workers, args))
        print(f"workers {workers}: {results[-1]['images_per_s']:.2f} images/s", flush=True)
    images_per_iteration = args.batch * len(sources)
    extrapolated = extrapolate(results, images_per_iteration, args.scale_to)
    record = {
        "benchmark": "bench_loader",
        **code,
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["bench_loader", *argv]),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "png_mb_mean": {name: round(png_megabytes(args.cache / name), 3) for name in dict.fromkeys(args.domains)},
        "image_size": {name: list(NATIVE_SIZE[name]) for name in dict.fromkeys(args.domains)},
        "results": results,
        "images_per_iteration": images_per_iteration,
        "needed_images_per_s": f"{images_per_iteration} × iterations/s of the training step",
        "extrapolated": extrapolated,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(summary(results, extrapolated, images_per_iteration))
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
