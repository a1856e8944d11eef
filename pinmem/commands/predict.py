"""``pinmem predict``: segment image files, folders or glob patterns (trainId PNGs, colour masks, overlays)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pinmem.commands.options import add_inference_options, inference_settings


def _error_line(line: str) -> None:
    print(f"pinmem: error: {line}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from pinmem.errors import PinmemError
    from pinmem.predict import predict_files
    from pinmem.segmenter import DEFAULT_MAX_PIXELS, load

    max_side = args.max_side or None
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    segmenter = load(args.checkpoint, inference_settings(args), max_side=max_side, max_pixels=max_pixels)
    print(f"classes ({segmenter.num_classes}): {', '.join(segmenter.classes.names)}")
    if args.memory_map and not segmenter.has_memory:
        raise PinmemError("--memory-map needs a model with a memory module (method pinmem); this one has none")
    summary = predict_files(segmenter, args.inputs, args.out, memory=args.memory_map, recursive=args.recursive,
                            alpha=args.alpha, progress=not args.quiet, report=_error_line)
    print(f"wrote {len(summary.outputs)} files for {summary.written} images to {args.out}")
    if summary.failed:
        print(f"pinmem: {len(summary.failed)} input(s) could not be processed (listed above)", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add ``predict`` to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser("predict", help="segment images: trainId PNGs, colour masks, overlays",
                              description="Segment image files, folders or glob patterns of any size.")
    p.add_argument("checkpoint", help="a pinmem checkpoint (.pt)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or quoted glob patterns")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--memory-map", action="store_true",
                   help="also write <stem>_memory.png: the most similar memory slot per pixel, in its class colour")
    p.add_argument("--recursive", action="store_true", help="also search sub-folders of folder inputs")
    p.add_argument("--max-side", type=int, default=2048,
                   help="shrink images whose longer side exceeds this before the forward pass; outputs keep the "
                        "input size (default 2048, 0 = never)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="skip, with a message, images with more than N pixels, checked before decoding (default "
                        "100 megapixels; 0 = only the decoder's limit, 268 megapixels)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colour mask (default 0.5)")
    add_inference_options(p)
    p.set_defaults(func=cmd_predict)
