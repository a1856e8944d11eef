"""``pinmem demo``: the whole pipeline on the built-in street world (:mod:`pinmem.demo`)."""

from __future__ import annotations

import argparse
from typing import Any

from pinmem.engine.config import METHOD_NAMES


def cmd_demo(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from pinmem.demo import DemoSettings, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    settings = DemoSettings(out=Path(args.out), methods=tuple(args.methods), workers=args.workers,
                            progress=not args.quiet)
    if args.iterations is not None:
        settings.iterations = args.iterations
    if args.crop is not None:
        settings.crop = args.crop
    if args.lr is not None:
        settings.lr = args.lr
    if args.backbone is not None:
        settings.backbone = args.backbone
    if args.backbone_weights is not None:
        settings.backbone_weights = None if args.backbone_weights == "none" else args.backbone_weights
    if args.channels_last is not None:
        settings.channels_last = args.channels_last
    if args.processes is not None:
        settings.processes = args.processes
    if args.tiny:  # a smoke run of the whole path (seconds): the numbers mean nothing
        settings.iterations, settings.num_train = args.iterations or 2, 8
        settings.num_val = settings.num_val_sources = 2
        settings.size, settings.crop, settings.batch_per_domain, settings.examples = (96, 48), 48, 2, 1
    run_demo(settings)
    return 0


def register(subparsers: Any) -> None:
    """Add ``demo`` to an ``argparse`` sub-parsers object."""
    demo = subparsers.add_parser(
        "demo", help="the whole pipeline on the built-in street world (CPU, minutes, no download)",
        description="Generate the procedural street world, train erm and pinmem on the gtav+synthia styles, "
                    "evaluate on the sources' val splits and the unseen cityscapes/bdd100k/mapillary styles, "
                    "print the comparison and write a report folder.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--methods", nargs="+", default=["erm", "pinmem"], choices=METHOD_NAMES)
    demo.add_argument("--iterations", type=int, default=None, help="training iterations per method (default 150)")
    demo.add_argument("--crop", type=int, default=None, help="training crop size (default 112)")
    demo.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05)")
    demo.add_argument("--backbone", default=None, help="model.backbone (default efficientnet_lite0)")
    demo.add_argument("--backbone-weights", default=None,
                      help="'imagenet' (default: EfficientNet-Lite0's packaged weights), a local file, or 'none'")
    demo.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                      help="train in the channels-last layout (default: off; 0.92-0.95x the training time on CPU, but "
                           "float32 gradients further from float64's: docs/results.md, the demo)")
    demo.add_argument("--workers", type=int, default=2, help="processes rendering the world")
    demo.add_argument("--processes", type=int, default=None,
                      help="methods trained and evaluated at once, the cores shared out as threads (default 1: one "
                           "after the other; 2 took as long on a 2-core CPU: docs/performance.md)")
    demo.add_argument("--tiny", action="store_true", help="a seconds-long smoke run of the whole path")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)
