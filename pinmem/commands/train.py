"""``pinmem train``: a YAML config and ``key=value`` overrides in, a trained checkpoint out."""

from __future__ import annotations

import argparse
from typing import Any

from pinmem.engine.config import METHOD_NAMES


def cmd_train(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from pinmem.engine.config import load_config
    from pinmem.training.checkpoint import open_resume
    from pinmem.training.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = list(args.overrides)
    resume = args.resume
    if resume and "=" in resume and not Path(resume).exists():  # `--resume key=value`: no path was given
        overrides.insert(0, resume)
        resume = ""
    # before the trainer writes anything: weights that do not fit the configured model are a clear message
    run = open_resume(args.config, overrides, resume or None) if resume is not None else None
    config = run.config if run else load_config(args.config, overrides)
    from pinmem.engine.distributed import shutdown
    from pinmem.training.faults import TrainingInterrupted

    try:
        results = Trainer(config, run).fit()
    except TrainingInterrupted as stopped:  # SIGTERM/SIGUSR1/Ctrl-C: last.pt written, a status of its own
        print(f"pinmem: {stopped}", file=sys.stderr)
        return stopped.exit_code
    finally:
        shutdown()
    for name, result in results.items():
        print(f"{name:<12s} val mIoU {100 * result.miou:6.2f}  ({result.num_images} images, whole image)")
    return 0


def register(subparsers: Any) -> None:
    """Add ``train`` to an ``argparse`` sub-parsers object."""
    train = subparsers.add_parser(
        "train", help=f"train a model ({', '.join(METHOD_NAMES)})",
        description="Train with the typed defaults, a YAML config and key=value overrides; "
                    "`torchrun --nproc_per_node N -m pinmem train ...` for several processes. SIGTERM, SIGUSR1 or "
                    "Ctrl-C stop after the current iteration with last.pt written and exit status 75 (continue "
                    "with --resume); a second Ctrl-C stops at once.",
    )
    train.add_argument("--config", help="YAML config file (see configs/)")
    train.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                       help="continue from a checkpoint (default: OUT/checkpoints/last.pt)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.iterations=1000 method=erm")
    train.set_defaults(func=cmd_train)
