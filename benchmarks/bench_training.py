"""Time per training iteration of mldg and pinmem (first and second order) relative to erm, and peak memory.

Every method trains the same model on the same images per iteration (b per domain × 2 domains), on a fixed
synthetic batch; the methods run interleaved (erm, mldg, pinmem, … repeated), and the ratio of medians is
reported. Peak memory: CUDA ``max_memory_allocated`` on a GPU, else the peak resident-set growth of a fresh
subprocess per method over the bare process (model, optimiser state, batch and two iterations' activations). Run::

    python benchmarks/bench_training.py --backbone resnet18 --size 128 --repeats 5
    python benchmarks/bench_training.py --backbone resnet50 --size 256 --repeats 3
    python benchmarks/bench_training.py --device cuda --amp bf16 --backbone resnet50 --size 768   # GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from pinmem.engine.config import load_config, model_kwargs
from pinmem.engine.distributed import DistContext
from pinmem.methods import build_method
from pinmem.models import build_model

VARIANTS = {
    "erm": ["method=erm"],
    "mldg (1st order)": ["method=mldg", "meta.first_order=true"],
    "pinmem (1st order)": ["method=pinmem", "meta.first_order=true"],
    "pinmem (2nd order)": ["method=pinmem", "meta.first_order=false"],
}


def make(variant: str, args: argparse.Namespace):
    cfg = load_config(None, [*VARIANTS[variant], f"model.backbone={args.backbone}", f"train.amp={args.amp}"])
    model = build_model(**model_kwargs(cfg)).to(args.device).train()
    if model.memory is not None:
        model.memory.commit(torch.nn.functional.normalize(torch.randn(19, 256), dim=1))
    method = build_method(cfg, model, DistContext(device=torch.device(args.device)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    batch = {d: {"image": torch.randn(args.batch, 3, args.size, args.size, generator=g),
                 "label": torch.randint(0, 19, (args.batch, args.size, args.size), generator=g)}
             for d in ("gtav", "synthia")}
    return model, method, optimizer, batch


def one_step(model, method, optimizer, batch, args, iteration: int) -> float:
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.amp == "bf16")
    sync()
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        method.step(batch, iteration, 0.01)
    optimizer.step()
    method.after_step(iteration)
    sync()
    return time.perf_counter() - start


def peak_memory(variant: str, args: argparse.Namespace) -> float:
    """Peak memory (MiB) of two iterations of one variant, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--measure-memory", variant, "--backbone", args.backbone, "--size",
           str(args.size), "--batch", str(args.batch), "--device", args.device, "--amp", args.amp]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def measure_memory(variant: str, args: argparse.Namespace) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the bare process: Python, torch, pinmem
    model, method, optimizer, batch = make(variant, args)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(2):
        one_step(model, method, optimizer, batch, args, i)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"peak_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="images per domain (two domains)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--measure-memory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.measure_memory:
        measure_memory(args.measure_memory, args)
        return
    setups = {v: make(v, args) for v in VARIANTS}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for s in setups.values():  # warm-up
        one_step(*s, args, 0)
    for r in range(args.repeats):
        for v, s in setups.items():
            times[v].append(one_step(*s, args, r + 1))
    base = statistics.median(times["erm"])
    print(f"{args.backbone} {args.size}², {args.batch} images per domain × 2, {args.device}, amp {args.amp}, "
          f"{args.repeats} interleaved repeats, {torch.get_num_threads()} threads")
    print(f"{'variant':<20s} {'s/iter':>8s} {'× erm':>7s} {'peak MiB':>9s}")
    for v in VARIANTS:
        med = statistics.median(times[v])
        print(f"{v:<20s} {med:8.3f} {med / base:7.2f} {peak_memory(v, args):9.0f}")


if __name__ == "__main__":
    main()
