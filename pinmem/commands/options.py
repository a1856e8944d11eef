"""Argument types and option groups shared by several sub-commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_inference_options(parser: argparse.ArgumentParser, batch_help: str) -> None:
    """``--mode/--flip/--crop/--stride/--pad/--device/--amp/--batch-size/--quiet`` (``eval`` and ``predict``)."""
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole",
                        help="whole image (default) or sliding windows (logits averaged over overlaps)")
    parser.add_argument("--flip", action="store_true", help="also average the horizontally flipped prediction")
    parser.add_argument("--crop", type=positive_int, default=768, help="sliding window size (default 768)")
    parser.add_argument("--stride", type=positive_int, default=512, help="sliding window stride (default 512)")
    parser.add_argument("--pad", action="store_true",
                        help="slide: pad images smaller than a window instead of shrinking the window")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast (default none)")
    parser.add_argument("--batch-size", type=positive_int, default=1, help=batch_help)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
