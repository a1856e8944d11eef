"""Inference cost of the memory model over the plain model (issue 3's measurements).

Times both models in the same process, interleaved (A B, B A, A B, … so neither always runs first), in eval
mode without gradients, and reports the median of the per-pair ratios memory/plain (target ≤ 1.05). Peak
memory of one forward: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the growth of the peak resident
set (VmHWM, reset through /proc/self/clear_refs) over the resident set after building the model, each model
in a fresh subprocess so freed-but-cached memory of one cannot hide the other's.

    python benchmarks/bench_models.py --device cpu --threads 2 --size 1024x512 --repeats 5
    python benchmarks/bench_models.py --device cuda --amp bf16 --size 2048x1024 --repeats 50

The result, the git commit and the command are written to ``results/measurements/bench_models.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

from pinmem.models import build_model  # noqa: E402
from pinmem.runtime import AMP_MODES, autocast, resolve_device  # noqa: E402


@dataclass
class BenchResult:
    device: str
    arch: str
    backbone: str
    size: str
    batch: int
    amp: str
    threads: int
    repeats: int
    plain_ms: float
    memory_ms: float
    ratio_median: float
    ratios: list[float]
    plain_peak_mb: float
    memory_peak_mb: float
    read_ms: float


def _parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _make(args: argparse.Namespace, memory: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(arch=args.arch, backbone=args.backbone, memory=memory).eval().to(args.device)
    if memory:  # a populated memory (values do not change the cost, but avoid an all-zero special case)
        model.memory.commit(torch.nn.functional.normalize(torch.randn_like(model.memory.slots), dim=1))
    return model


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _time_once(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace) -> float:
    _sync(args.device)
    start = time.perf_counter()
    with torch.no_grad(), autocast(args.amp, args.device):
        model(x)
    _sync(args.device)
    return time.perf_counter() - start


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_mb(args: argparse.Namespace, memory: bool) -> float:
    """Peak memory of one forward (MiB) of the plain (memory=False) or the memory model."""
    w, h = _parse_size(args.size)
    model = _make(args, memory)
    x = torch.randn(args.batch, 3, h, w, device=args.device)
    if torch.device(args.device).type == "cuda":
        _time_once(model, x, args)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _time_once(model, x, args)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    _time_once(model, x, args)
    return (_status_kb("VmHWM") - base) / 1024


def _peak_in_subprocess(args: argparse.Namespace, memory: bool) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--peak-only",
        "memory" if memory else "plain",
        "--device",
        args.device,
        "--arch",
        args.arch,
        "--backbone",
        args.backbone,
        "--size",
        args.size,
        "--batch",
        str(args.batch),
        "--amp",
        args.amp,
        "--threads",
        str(args.threads),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> BenchResult:
    w, h = _parse_size(args.size)
    plain, mem = _make(args, False), _make(args, True)
    x = torch.randn(args.batch, 3, h, w, device=args.device)
    for _ in range(args.warmup):
        _time_once(plain, x, args)
        _time_once(mem, x, args)
    a_times, b_times = [], []
    for i in range(args.repeats):
        order = [(plain, a_times), (mem, b_times)]
        for model, bucket in order if i % 2 == 0 else order[::-1]:
            bucket.append(_time_once(model, x, args))
    ratios = [b / a for a, b in zip(a_times, b_times, strict=True)]
    read_ms = _time_read(mem, x, args)
    del plain, mem
    return BenchResult(
        device=args.device if torch.device(args.device).type == "cpu" else torch.cuda.get_device_name(),
        arch=args.arch,
        backbone=args.backbone,
        size=args.size,
        batch=args.batch,
        amp=args.amp,
        threads=torch.get_num_threads(),
        repeats=args.repeats,
        plain_ms=1000 * statistics.median(a_times),
        memory_ms=1000 * statistics.median(b_times),
        ratio_median=statistics.median(ratios),
        ratios=[round(r, 4) for r in ratios],
        plain_peak_mb=_peak_in_subprocess(args, False),
        memory_peak_mb=_peak_in_subprocess(args, True),
        read_ms=read_ms,
    )


def _time_read(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace) -> float:
    """Median time (ms) of the memory module alone (read + fusion) on the model's feature F."""
    with torch.no_grad(), autocast(args.amp, args.device):
        feature = model(x).feature
    times = []
    for _ in range(max(args.repeats, 5)):
        _sync(args.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast(args.amp, args.device):
            model.memory(feature)
        _sync(args.device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA when available)")
    p.add_argument("--arch", default="deeplabv3plus")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", default="1024x512", help="input width x height")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--amp", choices=AMP_MODES, default="none")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", "--json", type=Path, default=None,
                   help="the JSON to write (default results/measurements/bench_models.json)")
    p.add_argument("--peak-only", choices=["plain", "memory"], help=argparse.SUPPRESS)
    add_allow_dirty_argument(p)
    args = p.parse_args(argv)
    args.device = str(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.peak_only:
        print(f"{peak_memory_mb(args, args.peak_only == 'memory'):.1f}")
        return
    record = start_record("bench_models", argv, allow_dirty=args.allow_dirty)
    result = run(args)
    print(
        f"{result.arch} {result.backbone} {result.size} batch {result.batch} on {result.device} "
        f"({result.threads} threads, amp {result.amp}), {result.repeats} interleaved pairs"
    )
    print(f"  plain  {result.plain_ms:9.1f} ms   peak +{result.plain_peak_mb:8.1f} MiB")
    print(f"  memory {result.memory_ms:9.1f} ms   peak +{result.memory_peak_mb:8.1f} MiB")
    print(f"  memory module alone (read + fusion on F): {result.read_ms:.2f} ms")
    print(f"  median ratio memory/plain {result.ratio_median:.4f}  (pairs: {result.ratios})")
    print(f"  load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")
    finish_record(record, asdict(result), args.out)


if __name__ == "__main__":
    main()
