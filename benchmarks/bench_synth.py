"""Speed of the synthetic world on ONE core: rendering alone, and rendering + writing the native formats.

    python benchmarks/bench_synth.py                       # 1000 images at 512x256, spread over the styles
    python benchmarks/bench_synth.py --num 200 --styles gtav cityscapes --size 320x160

The process is pinned to one CPU and OpenCV/BLAS threads are limited to one before anything is imported, so the
numbers are single-core. The times, the git commit and the command are written to
``results/measurements/bench_synth.json`` (``--json``). ``mapillary`` renders at 1.5x the size (its camera's
resolution_scale); it is left out of the default mix so that every image is exactly the requested size; name it
to include it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

DEFAULT_STYLES = ("gtav", "synthia", "idd", "cityscapes", "bdd100k")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000, help="images in all (split evenly over the styles)")
    parser.add_argument("--size", default="512x256", help="WxH")
    parser.add_argument("--styles", nargs="+", default=list(DEFAULT_STYLES))
    parser.add_argument("--out", default=None, help="where to write (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, default=None,
                        help="the measurement JSON (default results/measurements/bench_synth.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    record = start_record("bench_synth", argv, allow_dirty=args.allow_dirty)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)

    from pinmem.synth.scene import render_scene, render_size
    from pinmem.synth.style_io import load_style
    from pinmem.synth.world import generate_domain

    width, height = (int(v) for v in args.size.lower().split("x"))
    styles = [load_style(s) for s in args.styles]
    per_style = [args.num // len(styles) + (i < args.num % len(styles)) for i in range(len(styles))]
    render_scene(styles[0], 0, 0, (width, height))  # warm up: imports and the noise bank

    print(f"{args.num} images at {width}x{height} on one core ({', '.join(s.name for s in styles)})")
    total_render = total_render_cpu = 0.0
    timings: dict[str, dict[str, object]] = {}
    for style, count in zip(styles, per_style, strict=True):
        start, cpu_start = time.perf_counter(), time.process_time()
        for index in range(count):
            render_scene(style, 0, index, (width, height))
        took = time.perf_counter() - start
        total_render += took
        total_render_cpu += time.process_time() - cpu_start
        w, h = render_size(style, (width, height))
        timings[style.name] = {"images": count, "size": f"{w}x{h}", "render_s": round(took, 2)}
        print(f"  render        {style.name:<11s} {count:5d} images {w}x{h}: {took:6.2f} s "
              f"({1000 * took / max(count, 1):5.1f} ms/image)")
    print(f"  render        all         {args.num:5d} images: {total_render:6.2f} s")

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    total_write = total_write_cpu = 0.0
    try:
        for style, count in zip(styles, per_style, strict=True):
            start, cpu_start = time.perf_counter(), time.process_time()
            generate_domain(out / style.name, style, count, 0, (width, height), 0, progress=False, force=True)
            took = time.perf_counter() - start
            total_write += took
            total_write_cpu += time.process_time() - cpu_start
            timings[style.name]["render_write_s"] = round(took, 2)
            print(f"  render+write  {style.name:<11s} {count:5d} images ({style.format}): {took:6.2f} s "
                  f"({1000 * took / max(count, 1):5.1f} ms/image)")
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print(f"  render+write  all         {args.num:5d} images: {total_write:6.2f} s")
    print(f"  CPU time: render {total_render_cpu:.2f} s, render+write {total_write_cpu:.2f} s (wall clock above)")
    results = {"images": args.num, "size": f"{width}x{height}", "cores": 1, "render_s": round(total_render, 2),
               "render_write_s": round(total_write, 2), "render_cpu_s": round(total_render_cpu, 2),
               "render_write_cpu_s": round(total_write_cpu, 2), "per_style": timings}
    finish_record(record, results, args.json)
    return results


if __name__ == "__main__":
    main()
