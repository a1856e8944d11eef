"""Cost of the evaluation modes: seconds per image for whole / slide, with and without flip.

Random weights and random images (the cost does not depend on them); eval mode, no gradients. Also times the
confusion-matrix update for one image's pixels, which must stay negligible next to a forward pass. The times,
the git commit and the command are written to ``results/measurements/bench_eval.json`` (``--out``).

    python benchmarks/bench_eval.py --device cpu --threads 2 --backbone resnet18 --size 1024x512 --repeats 3
    python benchmarks/bench_eval.py --device cuda --amp bf16 --backbone resnet50 --size 2048x1024 --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

from pinmem.evaluation import ConfusionMatrix, InferenceSettings, infer  # noqa: E402
from pinmem.models import build_model  # noqa: E402
from pinmem.runtime import AMP_MODES, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--arch", default="deeplabv3plus")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", default="1024x512", help="WxH")
    parser.add_argument("--crop", type=int, default=768)
    parser.add_argument("--stride", type=int, default=512)
    parser.add_argument("--windows-per-batch", type=int, default=4)
    parser.add_argument("--amp", choices=AMP_MODES, default="none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default results/measurements/bench_eval.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    record = start_record("bench_eval", argv, allow_dirty=args.allow_dirty)
    device = resolve_device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    model = build_model(arch=args.arch, backbone=args.backbone, memory=True).to(device).eval()
    x = torch.randn(1, 3, h, w, device=device)
    print(f"{args.arch} {args.backbone} with memory, {w}x{h}, {device}, amp {args.amp}, "
          f"threads {torch.get_num_threads()}")
    results: dict[str, Any] = {"arch": args.arch, "backbone": args.backbone, "size": f"{w}x{h}",
                               "device": str(device), "amp": args.amp, "threads": torch.get_num_threads(),
                               "repeats": args.repeats, "ms_per_image": {}}
    for mode, flip in (("whole", False), ("whole", True), ("slide", False), ("slide", True)):
        settings = InferenceSettings(mode=mode, flip=flip, crop=args.crop, stride=args.stride,
                                     batch_size=args.windows_per_batch, amp=args.amp)
        seconds = time_call(lambda s=settings: infer(model, x, s), device, args.repeats)
        print(f"{mode:<6s} flip={flip!s:<5s} {seconds * 1000:9.1f} ms/image")
        results["ms_per_image"][f"{mode}{'+flip' if flip else ''}"] = round(seconds * 1000, 1)
    pred = torch.randint(0, 19, (h, w), device=device)
    gt = torch.randint(0, 20, (h, w), device=device)
    cm = ConfusionMatrix()
    seconds = time_call(lambda: cm.update(pred, gt), device, max(5, args.repeats))
    print(f"confusion update {seconds * 1000:9.2f} ms/image")
    results["confusion_update_ms"] = round(seconds * 1000, 2)
    finish_record(record, results, args.out)
    return results


if __name__ == "__main__":
    main()
