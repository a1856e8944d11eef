"""``pinmem eval``: score a checkpoint on target datasets (the paper's Table 1).

Returns the exit code; user mistakes raise :class:`pinmem.errors.PinmemError`, which the CLI prints without a
traceback (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from pinmem.commands.options import add_inference_options, inference_settings, positive_int
from pinmem.errors import ConfigError


def _limited(dataset: Any, limit: int | None) -> Any:
    if limit is None or limit >= len(dataset):
        return dataset
    import torch

    return torch.utils.data.Subset(dataset, range(limit))


def require_same_classes(checkpoint: str, config: Any, names: list[str], datasets: list[Any]) -> Any:
    """The checkpoint's class set; a :class:`ConfigError` naming the checkpoint and the dataset when a dataset's
    classes differ from the model's (their count, or their names where the checkpoint records names)."""
    from pinmem.data.classes import class_set_from, describe_difference

    model = config.model
    classes = class_set_from(model.classes, model.palette, model.num_classes)
    named = bool(model.classes) or classes.is_cityscapes
    for name, dataset in zip(names, datasets, strict=True):
        theirs = dataset.class_set
        if len(theirs) != len(classes) or (named and theirs.names != classes.names):
            raise ConfigError(f"{checkpoint}: the model predicts {classes.describe()} but dataset {name} at "
                              f"{dataset.root} has {theirs.describe()} ({describe_difference(classes, theirs)})")
    return classes


def cmd_eval(args: argparse.Namespace) -> int:
    from pinmem.data import build_dataset
    from pinmem.evaluation.evaluate import evaluate
    from pinmem.evaluation.paper import query_from_config
    from pinmem.evaluation.report import build_report, format_text, write_json, write_report_files
    from pinmem.runtime import resolve_device
    from pinmem.training.checkpoint import load_model

    names, roots = args.dataset or [], args.root or []
    if not names or len(names) != len(roots):
        raise ConfigError(f"give one --root per --dataset (got {len(names)} --dataset and {len(roots)} --root)")
    settings = inference_settings(args)
    device = resolve_device(settings.device)
    datasets = [build_dataset(n, r, args.split) for n, r in zip(names, roots, strict=True)]  # fail before loading
    loaded = load_model(args.checkpoint, map_location=device)  # the file is opened once
    model, config, iteration = loaded.model, loaded.config, loaded.iteration
    classes = require_same_classes(args.checkpoint, config, names, datasets)
    print(f"classes ({len(classes)}): {', '.join(classes.names)}")
    results = []
    for name, dataset in zip(names, datasets, strict=True):
        res = evaluate(model, _limited(dataset, args.limit), settings, progress=not args.quiet,
                       num_workers=args.workers, name=name)
        res.split = args.split
        results.append(res)
    query = query_from_config(config, settings.target_bn, args.paper_method) if args.compare_paper else None
    report = build_report(results, args.checkpoint, config, iteration, roots, query)
    print(format_text(report))
    written = []
    if args.out:
        written += write_report_files(report, args.out)
    if args.json:
        written.append(write_json(report, args.json))
    for path in written:
        print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``eval`` to an ``argparse`` sub-parsers object."""
    from pinmem.data import DATASETS

    p = subparsers.add_parser("eval", help="score a checkpoint on target datasets (the paper's Table 1)",
                              description="Score a checkpoint: per-class IoU, mIoU and pixel accuracy per dataset.")
    p.add_argument("checkpoint", help="a pinmem checkpoint (.pt)")
    p.add_argument("--dataset", action="append", metavar="NAME",
                   help=f"dataset name ({', '.join(sorted(DATASETS))}, or any name for a folder holding a "
                        "dataset.yaml); repeat with --root for several targets")
    p.add_argument("--root", action="append", metavar="DIR", help="the dataset's root folder (one per --dataset)")
    p.add_argument("--split", default="val", help="split to score (default val)")
    add_inference_options(p)
    p.add_argument("--workers", type=int, default=2, help="image-reading worker processes (default 2)")
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N images of each split")
    p.add_argument("--json", metavar="FILE", help="write the full results (confusion matrices included) as JSON")
    p.add_argument("--out", metavar="DIR", help="write results.json, results.csv and results.md into DIR")
    p.add_argument("--compare-paper", action="store_true",
                   help="show the paper's numbers for the checkpoint's method/sources/network beside ours")
    p.add_argument("--paper-method", metavar="NAME",
                   help="compare with this paper row instead (e.g. MLDG, 'Pin the Memory', TSMLDG)")
    p.set_defaults(func=cmd_eval)
