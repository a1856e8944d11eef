"""How far float32 gradients are from float64's in the default (NCHW) and the channels-last (NHWC) layout, on this
machine's convolution kernels (docs/results.md, the demo paragraphs; docs/performance.md).

One training-mode forward and backward of DeepLabV3+ (the segmentation loss with the auxiliary head) on a fixed
random batch, four times: float64 NCHW (the reference), float64 NHWC (the layouts agree to ~1e-13: the same
computation), float32 NCHW and float32 NHWC. Reported: the relative distance of each gradient vector (all
parameters) to the reference, ‖g − g₆₄‖ / ‖g₆₄‖. Written to ``results/measurements/channels_last_gradients.json``
(``--out``). Run::

    python benchmarks/channels_last_gradients.py                                   # EfficientNet-Lite0, ImageNet
    python benchmarks/channels_last_gradients.py --backbone resnet18 --weights none
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402


def gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool) -> list[torch.Tensor]:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x)
    loss = F.cross_entropy(out.logits, y, ignore_index=255)
    if out.aux_logits is not None:
        aux = F.interpolate(out.aux_logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + 0.4 * F.cross_entropy(aux, y, ignore_index=255)
    return [g.double() for g in torch.autograd.grad(loss, list(model.parameters()))]


def distance(grads: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    diff = sum(((g - r) ** 2).sum() for g, r in zip(grads, reference, strict=True))
    return float(torch.sqrt(diff / sum((r**2).sum() for r in reference)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet", help="backbone weights: imagenet, a file, or none")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    from pinmem.models import build_model

    record = start_record("channels_last_gradients", argv, allow_dirty=args.allow_dirty)
    torch.manual_seed(args.seed)
    weights = None if args.weights == "none" else args.weights
    base = build_model(arch="deeplabv3plus", backbone=args.backbone, backbone_weights=weights, memory=False).train()
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 19, (args.batch, args.size, args.size))
    runs = {}
    for dtype in (torch.float64, torch.float32):
        for channels_last in (False, True):
            torch.manual_seed(args.seed + 1)  # the same dropout masks
            model = copy.deepcopy(base).to(dtype)
            runs[(dtype, channels_last)] = gradients(model, x.to(dtype), y, channels_last)
    reference = runs[(torch.float64, False)]
    results = {
        "setting": f"DeepLabV3+ {args.backbone} ({args.weights}), {args.batch}×{args.size}², train mode, CPU",
        "relative_distance_to_float64_nchw": {
            "float64_nhwc": distance(runs[(torch.float64, True)], reference),
            "float32_nchw": distance(runs[(torch.float32, False)], reference),
            "float32_nhwc": distance(runs[(torch.float32, True)], reference),
        },
    }
    for name, value in results["relative_distance_to_float64_nchw"].items():
        print(f"{name:<14}{value:.3e}")
    finish_record(record, results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
