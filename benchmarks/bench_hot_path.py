"""Time per training iteration of the trainer's GPU options (docs/training.md "GPU options"): defaults,
``train.channels_last``, ``train.compile``, ``train.amp=bf16``, each through
:meth:`pinmem.training.trainer.Trainer.train_step` (the batch copy, the method's step under autocast, the
finiteness check, the SGD step and the commit) on the same batch.

The variants are built side by side from the built-in example scenes (written once into a temporary folder),
warmed up (``--warmup`` steps: the compilation happens there and is reported on its own) and timed interleaved —
one step of each variant in turn, ``--repeats`` rounds — so that a background load hits them alike; the medians and
their ratio to ``defaults`` are printed and written, with the commit, the command and the load average, to
``results/measurements/bench_hot_path_<method>.json`` (``--out``; ``benchmarks/measurement.py``). The compiler
starts from an empty cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``) unless ``--warm-cache``, so that the warm-up time
is what a first run pays. Run::

    python benchmarks/bench_hot_path.py --method erm --size 128 --repeats 7
    python benchmarks/bench_hot_path.py --method pinmem --variants defaults channels_last compile
    python benchmarks/bench_hot_path.py --device cuda --size 768 --backbone resnet50 --variants defaults \\
        channels_last compile bf16 bf16+channels_last                                           # a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

from pinmem.data.examples import write_examples  # noqa: E402
from pinmem.data.sampling import build_train_loader  # noqa: E402
from pinmem.engine.config import load_config  # noqa: E402
from pinmem.training.trainer import Trainer  # noqa: E402

VARIANTS = {
    "defaults": [],
    "channels_last": ["train.channels_last=true"],
    "compile": ["train.compile=true"],
    "bf16": ["train.amp=bf16"],
    "bf16+channels_last": ["train.amp=bf16", "train.channels_last=true"],
    "bf16+channels_last+compile": ["train.amp=bf16", "train.channels_last=true", "train.compile=true"],
}


def build(variant: str, root: Path, out: Path, args: argparse.Namespace) -> Trainer:
    overrides = [f"method={args.method}", f"model.backbone={args.backbone}", f"data.root={root}", "data.targets=[]",
                 f"train.crop_size={args.size}", f"train.batch_per_domain={args.batch}", "data.num_workers=0",
                 "pinmem.init_images=4", "train.progress=false", f"train.device={args.device}",
                 f"train.out_dir={out / variant}", *VARIANTS[variant]]
    trainer = Trainer(load_config(None, overrides))
    trainer.before_training()
    return trainer


def timed_step(trainer: Trainer, batch: dict, iteration: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    trainer.train_step(batch, iteration)
    sync()
    return time.perf_counter() - start


def measure(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Trainer], dict[str, float], dict[str, list[float]]]:
    """The variants' trainers, their warm-up seconds and their interleaved step times."""
    root = tmp / "data"
    write_examples(root, num_train=8, num_val=1, size=(max(args.size, 96) * 4 // 3, max(args.size, 96)), seed=0)
    trainers = {v: build(v, root, tmp / "runs", args) for v in args.variants}
    batch = next(iter(build_train_loader(trainers["defaults"].sources, trainers["defaults"].sampler_config)))
    warmup = {v: sum(timed_step(t, batch, i, args.device) for i in range(args.warmup)) for v, t in trainers.items()}
    times: dict[str, list[float]] = {v: [] for v in trainers}
    for r in range(args.repeats):
        for v, t in trainers.items():
            times[v].append(timed_step(t, batch, args.warmup + r, args.device))
    return trainers, warmup, times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="erm", choices=["erm", "mldg", "pinmem"])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="images per domain (two domains)")
    parser.add_argument("--variants", nargs="+", default=["defaults", "channels_last", "compile"],
                        choices=list(VARIANTS))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm-cache", action="store_true", help="keep the compiler's usual cache")
    parser.add_argument("--out", default=None,
                        help="the JSON to write (default results/measurements/bench_hot_path_<method>.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if "defaults" not in args.variants:
        args.variants.insert(0, "defaults")
    record = start_record(f"bench_hot_path_{args.method}", argv, script="bench_hot_path.py",
                          allow_dirty=args.allow_dirty)
    previous_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.warm_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor_cache")
        try:
            trainers, warmup, times = measure(args, Path(tmp))
        finally:
            if previous_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous_cache
    base = statistics.median(times["defaults"])
    print(f"{args.method}, {args.backbone} {args.size}², {args.batch} images per domain × 2, {args.device}, "
          f"{args.repeats} interleaved repeats after {args.warmup} warm-up steps, {torch.get_num_threads()} threads")
    print(f"{'variant':<28s} {'s/iter':>8s} {'× defaults':>10s} {'warm-up s':>10s}")
    rows = {}
    for v in trainers:
        med = statistics.median(times[v])
        fell_back = trainers[v].compiled is not None and not trainers[v].compiled.active
        note = "  (compile fell back)" if fell_back else ""
        print(f"{v:<28s} {med:8.3f} {med / base:10.2f} {warmup[v]:10.1f}{note}")
        rows[v] = {"median_s": round(med, 4), "ratio": round(med / base, 3), "warmup_s": round(warmup[v], 1),
                   "compile_fell_back": fell_back, "times_s": [round(x, 4) for x in times[v]]}
    finish_record(record, {"setting": f"{args.method}, {args.backbone} {args.size}², {args.batch} + {args.batch} "
                           f"images, {args.device}, {args.threads} thread(s)", "variants": rows}, args.out)


if __name__ == "__main__":
    main()
