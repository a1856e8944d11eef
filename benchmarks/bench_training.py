"""Time per training iteration of mldg and pinmem (first and second order) relative to erm, and peak memory.

Every method trains the same model on the same images per iteration (b per domain × 2 domains), on a fixed
synthetic batch; the methods run interleaved (erm, mldg, pinmem, … repeated), and the ratio of medians is
reported, beside the median of the per-round ratios (each round times every variant once, so a change of the
machine's load between rounds cancels in it). Peak memory: CUDA ``max_memory_allocated`` on a GPU, else the peak
resident-set growth of a fresh subprocess per method over the bare process (model, optimiser state, batch and
two iterations' activations). ``--profile`` then runs one more step of each variant under ``torch.profiler`` and
prints where its time goes: the method's phases (its functions, wrapped by this script) and the top operators
(docs/performance.md). Run::

    python benchmarks/bench_training.py --backbone resnet18 --size 128 --repeats 5 --threads 1
    python benchmarks/bench_training.py --backbone resnet50 --size 256 --repeats 3 --threads 1
    python benchmarks/bench_training.py --backbone resnet50 --size 256 --repeats 0 --skip-memory --profile
    python benchmarks/bench_training.py --device cuda --amp bf16 --backbone resnet50 --size 768   # GPU
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, provenance  # noqa: E402

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
    with autocast:  # as the trainer does: pinmem's commit (line 15) encodes X_mtr under the same autocast
        method.after_step(iteration)
    sync()
    return time.perf_counter() - start


def peak_memory(variant: str, args: argparse.Namespace) -> float:
    """Peak memory (MiB) of two iterations of one variant, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--measure-memory", variant, "--backbone", args.backbone, "--size",
           str(args.size), "--batch", str(args.batch), "--device", args.device, "--amp", args.amp]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def peak_rss_mib() -> float:
    """This process's peak resident set (MiB): ``VmHWM`` of its own address space on Linux (``ru_maxrss`` is
    inherited across ``exec`` from the parent, which here holds four models), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        scale = 2**20 if sys.platform == "darwin" else 2**10
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / scale / 1024


def measure_memory(variant: str, args: argparse.Namespace) -> None:
    base = peak_rss_mib()  # the bare process: Python, torch, pinmem
    model, method, optimizer, batch = make(variant, args)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(2):
        one_step(model, method, optimizer, batch, args, i)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mib() - base
    print(json.dumps({"peak_mib": peak}))


def _phase(owner: Any, name: str) -> None:
    """Wrap ``owner.name`` in a profiler range ``#name`` (profiling only)."""
    fn = getattr(owner, name, None)
    if fn is None or getattr(fn, "phase", False):
        return

    @functools.wraps(fn)
    def wrapped(*a: Any, **k: Any) -> Any:
        with record_function(f"#{name}"):
            return fn(*a, **k)

    wrapped.phase = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapped)


def mark_phases(setups: dict[str, tuple]) -> None:
    """Profiler ranges around the methods' pieces: the shared helpers (in every module that imported them), the
    methods' own functions and every model's ``forward`` (``#forward``: the plain forwards, not ``forward_with``)."""
    import pinmem.methods.base as base
    import pinmem.methods.mldg as mldg
    import pinmem.methods.pinmem as pm

    for module in (base, mldg, pm):
        for name in ("gradients", "inner_step", "accumulate", "forward_with", "copied_buffers", "call_with",
                     "read_loss", "update_loss", "memory_statistics", "first_order_weights",
                     "add_first_order_gradients"):
            _phase(module, name)
    for name in ("frozen_feature", "write_with", "outer_gradient", "after_step", "memory_for_meta_test"):
        _phase(pm.PinTheMemory, name)
    for name in ("meta_split", "seg_loss"):
        _phase(base.Method, name)
    for model, *_ in setups.values():
        forward: Callable[..., Any] = model.forward

        def plain(*a: Any, _f: Callable[..., Any] = forward, **k: Any) -> Any:
            with record_function("#forward"):
                return _f(*a, **k)

        model.forward = plain


def profile_steps(setups: dict[str, tuple], args: argparse.Namespace, iteration: int) -> None:
    """One profiled step per variant: its phases, the backward graph's nodes by inclusive time (where the
    backward and the second-order double backward spend theirs) and the top operators by self time (Markdown
    tables)."""
    mark_phases(setups)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    for variant, setup in setups.items():
        with profile(activities=activities) as prof:
            seconds = one_step(*setup, args, iteration)
        events = prof.key_averages()
        print(f"\n#### {variant}: {seconds * 1000:.0f} ms (profiled step)\n")
        print("| phase | ms | calls |\n|---|---:|---:|")
        for e in sorted((e for e in events if e.key.startswith("#")), key=lambda e: -e.cpu_time_total):
            print(f"| `{e.key[1:]}` | {e.cpu_time_total / 1000:.0f} | {e.count} |")
        node_prefix = "autograd::engine::evaluate_function: "
        nodes = sorted((e for e in events if e.key.startswith(node_prefix)), key=lambda e: -e.cpu_time_total)
        print("\n| autograd node (inclusive) | ms | calls |\n|---|---:|---:|")
        for e in nodes[: args.profile_rows]:
            print(f"| `{e.key.removeprefix(node_prefix)}` | {e.cpu_time_total / 1000:.0f} | {e.count} |")
        print("\n| operator | self ms | % | calls |\n|---|---:|---:|---:|")
        ops = sorted((e for e in events if not e.key.startswith("#")), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        for e in ops[: args.profile_rows]:
            print(f"| `{e.key}` | {e.self_cpu_time_total / 1000:.0f} | {100 * e.self_cpu_time_total / total:.1f} "
                  f"| {e.count} |")


def report(variants: list[str], wall: dict[str, list[float]], cpu: dict[str, list[float]],
           system: dict[str, list[float]], args: argparse.Namespace) -> None:
    """The table: wall-clock median and its ratio to erm's, the median of the per-round ratios, the same for the
    process's CPU time (with one thread, the time the step computed, not the time it waited for a core: the
    figure to trust on a shared machine), the kernel's share of that CPU time, and the peak memory."""
    def ratio(times: dict[str, list[float]], v: str) -> tuple[float, float]:
        per_round = statistics.median(t / e for t, e in zip(times[v], times["erm"], strict=True))
        return statistics.median(times[v]) / statistics.median(times["erm"]), per_round

    print(f"{'variant':<20s} {'wall s':>7s} {'× erm':>6s} {'round×':>6s} {'cpu s':>7s} {'× erm':>6s} "
          f"{'round×':>6s} {'sys %':>5s} {'peak MiB':>9s}")
    rows = {}
    for v in variants:
        (w, wr), (c, cr) = ratio(wall, v), ratio(cpu, v)
        peak = float("nan") if args.skip_memory else peak_memory(v, args)
        sys_share = 100 * sum(system[v]) / max(sum(cpu[v]), 1e-9)
        rows[v] = {"wall_s": wall[v], "cpu_s": cpu[v], "system_s": system[v], "wall_ratio": w,
                   "wall_round_ratio": wr, "cpu_ratio": c, "cpu_round_ratio": cr, "peak_mib": peak}
        print(f"{v:<20s} {statistics.median(wall[v]):7.3f} {w:6.2f} {wr:6.2f} {statistics.median(cpu[v]):7.3f} "
              f"{c:6.2f} {cr:6.2f} {sys_share:5.1f} {peak:9.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({**args.code, "args": {k: v for k, v in vars(args).items() if k != "code"},
                       "load_average": os.getloadavg(), "variants": rows}, out, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="images per domain (two domains)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="erm is always timed (the reference)")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses")
    parser.add_argument("--profile", action="store_true", help="then profile one step of each variant")
    parser.add_argument("--profile-rows", type=int, default=12)
    parser.add_argument("--json", default=None, help="also write the timings to this JSON file")
    parser.add_argument("--measure-memory", default=None, help=argparse.SUPPRESS)
    add_allow_dirty_argument(parser)
    args = parser.parse_args()
    # the code the timings come from, taken (and an uncommitted tree refused) before measuring, not after
    args.code = provenance(args.allow_dirty) if args.json else {}
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.measure_memory:
        measure_memory(args.measure_memory, args)
        return
    variants = ["erm", *(v for v in args.variants if v != "erm")]
    setups = {v: make(v, args) for v in variants}
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    system: dict[str, list[float]] = {v: [] for v in variants}  # of cpu: the kernel's (page faults, mostly)
    for s in setups.values():  # warm-up
        one_step(*s, args, 0)
    for r in range(args.repeats):
        for v, s in setups.items():
            start = os.times()
            wall[v].append(one_step(*s, args, r + 1))
            end = os.times()
            cpu[v].append(end.user + end.system - start.user - start.system)
            system[v].append(end.system - start.system)
    print(f"{args.backbone} {args.size}², {args.batch} images per domain × 2, {args.device}, amp {args.amp}, "
          f"{args.repeats} interleaved repeats, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.repeats:
        report(variants, wall, cpu, system, args)
    if args.profile:
        profile_steps(setups, args, args.repeats + 1)


if __name__ == "__main__":
    main()
