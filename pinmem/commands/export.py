"""``pinmem export``: a checkpoint to ONNX or TorchScript, optionally verified (both in :mod:`pinmem.export`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pinmem.commands.options import positive_int


def cmd_export(args: argparse.Namespace) -> int:
    from pinmem.export import export_checkpoint

    verify_at = (args.height + 7, args.width - 5) if args.verify else None  # not the traced size
    exported = export_checkpoint(args.checkpoint, args.out, args.format, args.height, args.width, args.opset,
                                 args.exporter, verify_at=verify_at)
    print(f"wrote {exported.path} ({args.format}): input 'image' float32 Bx3xHxW normalised RGB "
          f"((rgb/255 - mean)/std, ImageNet mean/std), output 'logits' Bx{exported.num_classes}xHxW; "
          "memory stored as a constant")
    check = exported.check
    if check is not None:
        print(f"verify: max |exported - PyTorch| logits = {check.max_abs_diff:.3g} at {check.height}x{check.width}")
        if not check.ok:
            print(f"pinmem: the exported model disagrees with PyTorch by more than {check.tolerance:g}",
                  file=sys.stderr)
            return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``export`` to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser("export", help="export a checkpoint to ONNX or TorchScript",
                              description="Export a checkpoint (memory included as a constant) to ONNX or "
                                          "TorchScript.")
    p.add_argument("checkpoint", help="a pinmem checkpoint (.pt)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="default onnx")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--height", type=positive_int, default=512, help="example input height (shapes stay dynamic)")
    p.add_argument("--width", type=positive_int, default=1024, help="example input width (shapes stay dynamic)")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="ONNX: torch.export-based (dynamo, needs onnxscript), TorchScript-based (legacy), or auto")
    p.add_argument("--verify", action="store_true",
                   help="run the exported file (onnxruntime / torch.jit) and compare its logits with PyTorch")
    p.set_defaults(func=cmd_export)
