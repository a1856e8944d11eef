"""The `pinmem` command line.

Every sub-command is a small function taking the parsed arguments. User mistakes raise
:class:`pinmem.errors.PinmemError`, which :func:`main` prints as one clear message with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pinmem import __version__
from pinmem.errors import PinmemError


def cmd_data_check(args: argparse.Namespace) -> int:
    from pinmem.data.check import check_dataset, format_report

    report = check_dataset(
        args.dataset, args.root, args.split, limit=args.limit, workers=args.workers, progress=not args.quiet
    )
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_data_examples(args: argparse.Namespace) -> int:
    from pinmem.data.examples import write_examples

    roots = write_examples(args.out, num_train=args.num, num_val=max(1, args.num // 2), size=args.size,
                           seed=args.seed)
    for name, root in roots.items():
        print(f"{name:<11s} {root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from pinmem.engine.config import load_config
    from pinmem.engine.trainer import Trainer, load_resume

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = list(args.overrides)
    resume = args.resume
    if resume and "=" in resume and not Path(resume).exists():  # `--resume key=value`: no path was given
        overrides.insert(0, resume)
        resume = ""
    if resume is not None:
        config, checkpoint = load_resume(args.config, overrides, resume or None)
    else:
        config, checkpoint = load_config(args.config, overrides), None
    from pinmem.engine.distributed import shutdown

    try:
        results = Trainer(config, checkpoint).fit()
    finally:
        shutdown()
    for name, result in results.items():
        print(f"{name:<12s} val mIoU {100 * result.miou:6.2f}  ({result.num_images} images, whole image)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from pinmem.demo import DemoSettings, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    settings = DemoSettings(out=Path(args.out), methods=tuple(args.methods), workers=args.workers,
                            progress=not args.quiet)
    if args.iterations is not None:
        settings.iterations = args.iterations
    if args.backbone is not None:
        settings.backbone = args.backbone
    if args.backbone_weights is not None:
        settings.backbone_weights = None if args.backbone_weights == "none" else args.backbone_weights
    if args.tiny:  # a smoke run of the whole path (seconds): the numbers mean nothing
        settings.iterations, settings.num_train, settings.num_val = args.iterations or 2, 8, 2
        settings.size, settings.crop, settings.batch_per_domain, settings.examples = (96, 48), 48, 2, 1
    run_demo(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pinmem.data import DATASETS

    parser = argparse.ArgumentParser(prog="pinmem", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pinmem {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model (erm, ibn, isw, mldg, pinmem)",
        description="Train with the typed defaults, a YAML config and key=value overrides; "
                    "`torchrun --nproc_per_node N -m pinmem train ...` for several processes.",
    )
    train.add_argument("--config", help="YAML config file (see configs/)")
    train.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                       help="continue from a checkpoint (default: OUT/checkpoints/last.pt)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.iterations=1000 method=erm")
    train.set_defaults(func=cmd_train)

    demo = commands.add_parser(
        "demo", help="the whole pipeline on the built-in street world (CPU, minutes, no download)",
        description="Generate the procedural street world, train erm and pinmem on the gtav+synthia styles, "
                    "evaluate on the sources' val splits and the unseen cityscapes/bdd100k/mapillary styles, "
                    "print the comparison and write a report folder.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--methods", nargs="+", default=["erm", "pinmem"],
                      choices=["erm", "ibn", "isw", "mldg", "pinmem"])
    demo.add_argument("--iterations", type=int, default=None, help="training iterations per method (default 250)")
    demo.add_argument("--backbone", default=None, help="model.backbone (default resnet18)")
    demo.add_argument("--backbone-weights", default=None,
                      help="'imagenet' (EfficientNet-Lite0's packaged weights), a local file, or 'none' (default)")
    demo.add_argument("--workers", type=int, default=2, help="processes rendering the world")
    demo.add_argument("--tiny", action="store_true", help="a seconds-long smoke run of the whole path")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    from pinmem.evaluation.commands import register as register_evaluation

    register_evaluation(commands)
    from pinmem.synth.command import register as register_synth

    register_synth(commands)

    data = commands.add_parser("data", help="inspect and prepare datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    check = data_commands.add_parser("check", help="check a dataset's layout, files and labels")
    check.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    check.add_argument("--root", required=True, help="the dataset's root folder")
    check.add_argument("--split", default="all", help="train, val, test or all (default: all)")
    check.add_argument("--limit", type=int, default=None, help="check only the first N pairs")
    check.add_argument("--workers", type=int, default=1, help="processes decoding files in parallel")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_data_check)

    examples = data_commands.add_parser(
        "examples", help="write a few small example scenes in all six native formats"
    )
    examples.add_argument("--out", required=True, help="folder to write <dataset>/ sub-folders into")
    examples.add_argument("--num", type=int, default=8, help="training images per dataset (val: half)")
    examples.add_argument("--size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(256, 128),
                          metavar="WxH", help="image size (default 256x128)")
    examples.add_argument("--seed", type=int, default=0)
    examples.set_defaults(func=cmd_data_examples)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PinmemError as err:
        print(f"pinmem: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pinmem: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
