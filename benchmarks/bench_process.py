"""Time per iteration of whole ``pinmem train`` processes, the way a user runs them (issue 12: "whole-process ratio
at ResNet-18 128² ≤ 1.5×"): data loading, the step, logging, checkpoints — everything but the start-up.

Each method is trained twice from scratch, for ``--short`` and for ``--long`` iterations, in fresh processes; the
time per iteration is the difference of the two wall times divided by the difference of the iteration counts, so
that the start-up (imports, the model, the memory initialisation, the loader's first batches) cancels. The runs
are interleaved — every method and length in turn, ``--repeats`` rounds — so that a background load hits them alike;
the medians over rounds and their ratio to ``erm`` are printed and written, with the commit, the command and the
load average, to ``results/measurements/bench_process.json`` (``--out``; ``benchmarks/measurement.py``).

The data are a small street world (``pinmem.synth``) written once into ``--world`` (default: a temporary folder).
Run::

    python benchmarks/bench_process.py                                  # R18, 128² crops, 4 + 4 images
    python benchmarks/bench_process.py --backbone efficientnet_lite0 --weights imagenet --size 160 \\
        --overrides train.channels_last=true                            # the demo's setting
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

SOURCES = ("gtav", "synthia")


def make_world(root: Path, num_train: int, size: tuple[int, int]) -> Path:
    from pinmem.synth.world import generate_world

    if not (root / "gtav").is_dir():
        generate_world(root, styles=SOURCES, num_train=num_train, num_val=1, size=size, seed=0, workers=2,
                       progress=False)
    return root


def train_seconds(method: str, iterations: int, args: argparse.Namespace, world: Path, out: Path) -> float:
    """Wall time of one ``pinmem train`` process."""
    overrides = [
        f"method={method}", f"model.backbone={args.backbone}", f"model.backbone_weights={args.weights}",
        f"data.root={world}", f"data.sources=[{','.join(SOURCES)}]", "data.targets=[]",
        f"data.num_workers={args.loader_workers}", f"train.crop_size={args.size}",
        f"train.batch_per_domain={args.batch}", f"train.iterations={iterations}", "train.progress=false",
        f"train.out_dir={out}", f"pinmem.init_images={args.init_images}", *args.overrides,
    ]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pinmem", "train", *overrides], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pinmem train failed ({method}, {iterations} iterations):\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["erm", "pinmem"])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--weights", default="null", help="model.backbone_weights (default: from scratch)")
    parser.add_argument("--size", type=int, default=128, help="crop size")
    parser.add_argument("--batch", type=int, default=4, help="images per domain (two domains)")
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loader-workers", type=int, default=1)
    parser.add_argument("--init-images", type=int, default=64, help="pinmem.init_images")
    parser.add_argument("--num-train", type=int, default=64, help="training images per source in the world")
    parser.add_argument("--world", type=Path, default=None, help="where the world is (written if missing)")
    parser.add_argument("--overrides", nargs="*", default=[], help="more key=value settings for every run")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default results/measurements/bench_process.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    if args.long <= args.short:
        parser.error("--long must be larger than --short")
    record = start_record("bench_process", argv, allow_dirty=args.allow_dirty)
    with tempfile.TemporaryDirectory(prefix="bench_process_") as tmp:
        world = make_world(args.world or Path(tmp) / "world", args.num_train, (2 * args.size, args.size))
        walls: dict[str, dict[int, list[float]]] = {m: {args.short: [], args.long: []} for m in args.methods}
        for r in range(args.repeats):
            for method in args.methods:
                for n in (args.short, args.long):
                    seconds = train_seconds(method, n, args, world, Path(tmp) / f"{method}_{n}_{r}")
                    walls[method][n].append(seconds)
                    print(f"round {r + 1}: {method} {n} iterations {seconds:.1f} s", flush=True)
    per_iteration = {m: [(lg - sh) / (args.long - args.short)
                         for sh, lg in zip(w[args.short], w[args.long], strict=True)] for m, w in walls.items()}
    median = {m: statistics.median(v) for m, v in per_iteration.items()}
    base = median.get("erm", next(iter(median.values())))
    results = {
        "setting": f"{args.backbone} ({args.weights}), {args.size}² crops, {args.batch} + {args.batch} images, "
                   f"{args.loader_workers} loader worker(s), {args.short} vs {args.long} iterations",
        "methods": {m: {"s_per_iteration_median": round(median[m], 4), "ratio_to_erm": round(median[m] / base, 3),
                        "s_per_iteration": [round(v, 4) for v in per_iteration[m]],
                        "wall_s": {str(n): [round(v, 2) for v in w[n]] for n in w}}
                    for m, w in walls.items()},
    }
    finish_record(record, results, args.out)
    print(f"{'method':<10}{'s/iter':>10}{'× erm':>8}   start-up + {args.short} iterations (s)")
    for m, entry in results["methods"].items():
        print(f"{m:<10}{entry['s_per_iteration_median']:>10.3f}{entry['ratio_to_erm']:>8.2f}   "
              f"{statistics.median(walls[m][args.short]):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
