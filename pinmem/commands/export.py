"""``pinmem export``: a checkpoint to ONNX or TorchScript (:mod:`pinmem.export`), optionally verified."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pinmem.commands.options import positive_int
from pinmem.errors import PinmemError


def _verify(path: Path, fmt: str, checkpoint: str, height: int, width: int) -> float:
    import numpy as np
    import torch

    from pinmem.training.checkpoint import load_model

    model, _ = load_model(checkpoint)
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).logits.numpy()
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise PinmemError("--verify for ONNX needs onnxruntime: pip install onnxruntime") from err
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        with torch.no_grad():
            out = torch.jit.load(str(path))(x).numpy()
    return float(np.abs(out - ref).max())


def cmd_export(args: argparse.Namespace) -> int:
    from pinmem.export import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.out, args.format, args.height, args.width, args.opset,
                             args.exporter)
    print(f"wrote {path} ({args.format}): input 'image' float32 Bx3xHxW normalised RGB "
          f"((rgb/255 - mean)/std, ImageNet mean/std), output 'logits' Bx19xHxW; memory stored as a constant")
    if args.verify:
        diff = _verify(path, args.format, args.checkpoint, args.height + 7, args.width - 5)
        print(f"verify: max |exported - PyTorch| logits = {diff:.3g} at {args.height + 7}x{args.width - 5}")
        if diff > 1e-3:
            print("pinmem: the exported model disagrees with PyTorch by more than 1e-3", file=sys.stderr)
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
