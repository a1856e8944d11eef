"""The device check: training speed and peak memory of erm, mldg and pinmem (first and second order), and the
inference cost of the memory model, on one GPU.

For every method of :data:`bench_training.VARIANTS` (the same model, optimiser, batch and step as
``benchmarks/bench_training.py``: the method's real ``step`` then ``after_step``), one after the other in this
process: build, ``--warmup`` untimed iterations, ``--iterations`` timed ones (each synchronised), then
iterations/s (1 / median), peak memory (``torch.cuda.max_memory_allocated`` over the timed iterations, and
apart over the warm-up, which holds cuDNN's algorithm search; on CPU the growth of the peak resident set, a rough
figure) and the projected wall time of the G+S protocol
(``--protocol-iterations``, 30,463). Then the inference time memory model ÷ baseline model (eval mode, no
gradients, interleaved pairs, median ratio). Writes ``device_check.json`` and ``device_check.md`` into ``--out``.

    python benchmarks/device_check.py                       # cuda, R50 DeepLabV3+, 768², 4 + 4 images, bf16
    python benchmarks/device_check.py --device cpu --tiny   # seconds: R18, 64², 2 + 2 images, inference 128×64

(``--tiny`` takes 2 images per domain, not 1: the meta-train half of mldg/pinmem would then be a single image,
whose 1×1 image-pooling branch of the ASPP batch norm cannot normalise in training mode.)

``benchmarks/device_check.sh`` builds the environment first and runs this.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO)]  # the sibling benchmarks; pinmem from this tree

from bench_training import VARIANTS, make, one_step  # noqa: E402
from measurement import add_allow_dirty_argument, provenance  # noqa: E402

from pinmem.engine.config import load_config, model_kwargs  # noqa: E402
from pinmem.models import build_model  # noqa: E402

#: G+S protocol length (``train.iterations``)
PROTOCOL_ITERATIONS = 30463
FULL = {"backbone": "resnet50", "size": 768, "batch": 4, "warmup": 3, "iterations": 10, "amp": "bf16",
        "infer_size": "2048x1024", "infer_repeats": 10}
TINY = {"backbone": "resnet18", "size": 64, "batch": 2, "warmup": 1, "iterations": 2, "amp": "none",
        "infer_size": "128x64", "infer_repeats": 2}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="the seconds-long CPU smoke version (TINY)")
    for key, value in FULL.items():  # default None: filled from FULL or TINY
        p.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value} "
                       f"(--tiny: {TINY[key]})")
    p.add_argument("--protocol-iterations", type=int, default=PROTOCOL_ITERATIONS)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads) on --device cpu")
    p.add_argument("--out", type=Path, default=REPO / "results" / "device")
    add_allow_dirty_argument(p)
    args = p.parse_args(argv)
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.amp not in ("none", "bf16"):
        p.error(f"--amp must be none or bf16, got {args.amp!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no GPU (torch.cuda.is_available() is False); use --device cpu --tiny")
    return args


def _sync(args: argparse.Namespace) -> None:
    if args.device == "cuda":
        torch.cuda.synchronize()


def _free(args: argparse.Namespace) -> None:
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_method(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up, then ``args.iterations`` synchronised training iterations of one method; its peak memory."""
    _free(args)
    rss_before = _rss_peak_mib()
    model, method, optimizer, batch = make(variant, args)
    if args.device == "cuda":  # the trainer's loader pins its batches
        batch = {d: {k: v.pin_memory() for k, v in part.items()} for d, part in batch.items()}
    for i in range(args.warmup):
        one_step(model, method, optimizer, batch, args, i)
    warmup_peak = None
    if args.device == "cuda":  # the warm-up's peak holds cuDNN's algorithm search (its trial workspaces); apart
        warmup_peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    times = [one_step(model, method, optimizer, batch, args, args.warmup + i) for i in range(args.iterations)]
    if args.device == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated (timed)"
    else:
        peak, peak_kind = _rss_peak_mib() - rss_before, "growth of the peak RSS (rough: 0 if not above the last)"
    del model, method, optimizer, batch
    median = statistics.median(times)
    return {
        "iterations_per_s": 1.0 / median,
        "s_per_iteration_median": median,
        "s_per_iteration_mean": statistics.fmean(times),
        "times_s": [round(t, 5) for t in times],
        "peak_memory_mib": round(peak, 1),
        "peak_memory_kind": peak_kind,
        "warmup_peak_memory_mib": None if warmup_peak is None else round(warmup_peak, 1),
        "projected_hours": args.protocol_iterations * median / 3600,
    }


def _inference_model(method: str, args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = load_config(None, [f"method={method}", f"model.backbone={args.backbone}"])
    model = build_model(**model_kwargs(cfg, load_backbone=False)).to(args.device).eval()
    if model.memory is not None:  # a populated memory: values do not change the cost
        model.memory.commit(torch.nn.functional.normalize(torch.randn_like(model.memory.slots), dim=1))
    return model


def _forward_time(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace) -> float:
    _sync(args)
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        model(x)
    _sync(args)
    return time.perf_counter() - start


def time_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Memory model ÷ baseline model, batch 1, eval mode, interleaved pairs (A B, B A, …)."""
    _free(args)
    width, height = (int(v) for v in args.infer_size.lower().split("x"))
    baseline, memory = _inference_model("erm", args), _inference_model("pinmem", args)
    x = torch.randn(1, 3, height, width, device=args.device)
    for _ in range(max(args.warmup, 1)):
        _forward_time(baseline, x, args)
        _forward_time(memory, x, args)
    base_t: list[float] = []
    mem_t: list[float] = []
    for i in range(args.infer_repeats):
        pairs = [(baseline, base_t), (memory, mem_t)]
        for model, bucket in pairs if i % 2 == 0 else pairs[::-1]:
            bucket.append(_forward_time(model, x, args))
    ratios = [m / b for b, m in zip(base_t, mem_t, strict=True)]
    del baseline, memory, x
    return {"size": args.infer_size, "batch": 1, "amp": args.amp, "baseline_ms": 1000 * statistics.median(base_t),
            "memory_ms": 1000 * statistics.median(mem_t), "ratio_median": statistics.median(ratios),
            "ratios": [round(r, 4) for r in ratios]}


def markdown(record: dict[str, Any]) -> str:
    a = record["args"]
    erm = record["methods"]["erm"].get("s_per_iteration_median", float("nan"))
    lines = [
        f"Device check on {record['device_name']} (torch {record['torch']}), {record['git_commit']}: "
        f"DeepLabV3+ {a['backbone']}, {a['size']}² crops, {a['batch']} images per domain × 2, amp {a['amp']}, "
        f"{a['warmup']} warm-up + {a['iterations']} timed iterations per method.",
        "",
        "| method | iterations/s | s/iteration | × erm | peak memory MiB | warm-up peak MiB | G+S hours "
        f"({a['protocol_iterations']:,} iterations) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in record["methods"].items():
        if "error" in m:
            lines.append(f"| {name} | {m['error']} | | | | | |")
            continue
        warmup = m.get("warmup_peak_memory_mib")  # absent in records before 2026-12-04's second run
        lines.append(f"| {name} | {m['iterations_per_s']:.3f} | {m['s_per_iteration_median']:.4f} | "
                     f"{m['s_per_iteration_median'] / erm:.2f} | {m['peak_memory_mib']:,.0f} | "
                     f"{'–' if warmup is None else f'{warmup:,.0f}'} | {m['projected_hours']:.2f} |")
    inf = record["inference"]
    lines += ["", f"Inference at {inf['size']} (batch 1, amp {inf['amp']}, eval): "
              f"baseline {inf['baseline_ms']:.2f} ms, memory model {inf['memory_ms']:.2f} ms, "
              f"memory ÷ baseline **{inf['ratio_median']:.4f}** (median of "
              f"{len(inf['ratios'])} interleaved pairs)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    code = provenance(args.allow_dirty)  # refused before measuring, not after
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    methods = {}
    for variant in VARIANTS:
        try:
            methods[variant] = time_method(variant, args)
        except torch.cuda.OutOfMemoryError as err:  # the others still get measured
            methods[variant] = {"error": f"out of GPU memory: {str(err).splitlines()[0]}"}
            print(f"{variant:<20s} {methods[variant]['error']}", flush=True)
            continue
        m = methods[variant]
        print(f"{variant:<20s} {m['iterations_per_s']:8.3f} it/s  peak {m['peak_memory_mib']:9.0f} MiB  "
              f"G+S {m['projected_hours']:7.2f} h", flush=True)
    inference = time_inference(args)
    print(f"inference memory ÷ baseline at {args.infer_size}: {inference['ratio_median']:.4f}", flush=True)
    record = {
        "benchmark": "device_check",
        **code,
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["device_check", *argv]),
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "methods": methods,
        "inference": inference,
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_check.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "device_check.md").write_text(markdown(record))
    print(f"wrote {args.out / 'device_check.json'} and {args.out / 'device_check.md'}")
    return record


if __name__ == "__main__":
    main()
