"""``pinmem report``: plots and tables comparing ``pinmem eval --json`` results; t-SNE of the memory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pinmem.commands.options import positive_int
from pinmem.errors import ConfigError


def cmd_report(args: argparse.Namespace) -> int:
    from pinmem.evaluation.report import format_combined_markdown, load_report, report_label

    if not args.results and not args.tsne:
        raise ConfigError("give evaluation results (JSON files from `pinmem eval --json`) and/or --tsne CHECKPOINT")
    out = Path(args.out)
    written: list[Path] = []
    if args.results:
        from pinmem.evaluation.plots import iou_bar_chart

        reports = [load_report(p) for p in args.results]
        labels = list(args.labels) if args.labels else [report_label(r, p) for r, p in zip(reports, args.results,
                                                                                           strict=True)]
        if len(labels) != len(reports):
            raise ConfigError(f"--labels gives {len(labels)} names for {len(reports)} results files")
        if len(set(labels)) != len(labels):
            labels = [f"{label} [{i + 1}]" for i, label in enumerate(labels)]
        out.mkdir(parents=True, exist_ok=True)
        md = out / "comparison.md"
        md.write_text(format_combined_markdown(reports, labels, args.results), encoding="utf-8")
        written += [md, iou_bar_chart(reports, labels, out / "iou_per_class.png")]
    if args.tsne:
        written.append(_tsne(args, out))
    for path in written:
        print(f"wrote {path}")
    return 0


def _tsne(args: argparse.Namespace, out: Path) -> Path:
    from pinmem.data import build_dataset
    from pinmem.evaluation.tsne import plot_tsne, sample_features
    from pinmem.runtime import resolve_device
    from pinmem.training.checkpoint import load_model

    if not args.dataset or not args.root:
        raise ConfigError("--tsne needs --dataset NAME and --root DIR for the pixels to embed")
    device = resolve_device(args.device)
    dataset = build_dataset(args.dataset, args.root, args.split)
    loaded = load_model(args.tsne, map_location=device)
    model, config = loaded.model, loaded.config
    sample = sample_features(model, dataset, args.images, args.per_class, args.seed, device)
    title = f"{config.method} on {args.dataset} ({len(sample.classes)} pixels" + (
        f", {len(sample.slots)} memory slots)" if sample.slots is not None else ")")
    return plot_tsne(sample, out / f"tsne_{args.dataset}.png", args.perplexity, args.seed, title)


def register(subparsers: Any) -> None:
    """Add ``report`` to an ``argparse`` sub-parsers object."""
    from pinmem.data import DATASETS

    p = subparsers.add_parser("report", help="plots and tables comparing evaluation results; t-SNE of the memory",
                              description="Per-class IoU bars and a combined table from `pinmem eval --json` "
                                          "files, and/or a t-SNE of memory slots and pixel features (--tsne).")
    p.add_argument("results", nargs="*", metavar="RESULTS.json", help="files written by `pinmem eval --json/--out`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="names of the results in the plots (one per file)")
    p.add_argument("--tsne", metavar="CHECKPOINT", help="t-SNE of this checkpoint's memory and pixel features")
    p.add_argument("--dataset", metavar="NAME",
                   help=f"dataset for the t-SNE pixels ({', '.join(sorted(DATASETS))}, or a folder dataset's name)")
    p.add_argument("--root", metavar="DIR", help="its root folder")
    p.add_argument("--split", default="val", help="its split (default val)")
    p.add_argument("--images", type=positive_int, default=10, help="images to sample pixels from (default 10)")
    p.add_argument("--per-class", type=positive_int, default=100, help="pixels per class (default 100)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=cmd_report)
