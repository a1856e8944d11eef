"""``pinmem data check`` and ``pinmem data examples``: inspect and prepare datasets."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_data_check(args: argparse.Namespace) -> int:
    from pinmem.data import is_folder_dataset
    from pinmem.data.check import check_dataset, format_report

    splits = [args.split]
    if args.split == "all" and is_folder_dataset(args.root):  # a folder dataset: statistics per split
        from pinmem.data.folder import FolderDataset

        splits = [s for s in FolderDataset.present_splits(args.root)] or ["all"]
    ok = True
    for split in splits:
        report = check_dataset(
            args.dataset, args.root, split, limit=args.limit, workers=args.workers, progress=not args.quiet
        )
        print(format_report(report))
        ok = ok and report.ok
    return 0 if ok else 1


def cmd_data_examples(args: argparse.Namespace) -> int:
    from pinmem.data.examples import write_examples

    roots = write_examples(args.out, num_train=args.num, num_val=max(1, args.num // 2), size=args.size,
                           seed=args.seed)
    for name, root in roots.items():
        print(f"{name:<11s} {root}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``data`` (with ``check`` and ``examples``) to an ``argparse`` sub-parsers object."""
    from pinmem.data import DATASETS

    data = subparsers.add_parser("data", help="inspect and prepare datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    check = data_commands.add_parser("check", help="check a dataset's layout, files and labels")
    check.add_argument("--dataset", required=True, metavar="NAME",
                       help=f"{', '.join(sorted(DATASETS))}, or any name for a folder holding a dataset.yaml")
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
