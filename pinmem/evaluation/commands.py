"""The ``eval``, ``predict``, ``export`` and ``report`` sub-commands (wired into ``pinmem.cli`` by ``register``).

Each ``cmd_*`` takes the parsed arguments and returns the exit code; user mistakes raise
:class:`pinmem.errors.PinmemError`, which the CLI prints without a traceback (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pinmem.errors import ConfigError, PinmemError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_inference_options(parser: argparse.ArgumentParser, batch_help: str) -> None:
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole",
                        help="whole image (default) or sliding windows (logits averaged over overlaps)")
    parser.add_argument("--flip", action="store_true", help="also average the horizontally flipped prediction")
    parser.add_argument("--crop", type=_positive, default=768, help="sliding window size (default 768)")
    parser.add_argument("--stride", type=_positive, default=512, help="sliding window stride (default 512)")
    parser.add_argument("--pad", action="store_true",
                        help="slide: pad images smaller than a window instead of shrinking the window")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast (default none)")
    parser.add_argument("--batch-size", type=_positive, default=1, help=batch_help)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


# -- eval -----------------------------------------------------------------------------------------------------
def _limited(dataset: Any, limit: int | None) -> Any:
    if limit is None or limit >= len(dataset):
        return dataset
    import torch

    return torch.utils.data.Subset(dataset, range(limit))


def cmd_eval(args: argparse.Namespace) -> int:
    from pinmem.data import build_dataset
    from pinmem.engine.checkpoint import load_checkpoint, load_model
    from pinmem.evaluation.evaluate import evaluate
    from pinmem.evaluation.paper import query_from_config
    from pinmem.evaluation.report import build_report, format_text, write_json, write_outputs
    from pinmem.inference import resolve_device

    names, roots = args.dataset or [], args.root or []
    if not names or len(names) != len(roots):
        raise ConfigError(f"give one --root per --dataset (got {len(names)} --dataset and {len(roots)} --root)")
    device = resolve_device(args.device)
    datasets = [build_dataset(n, r, args.split) for n, r in zip(names, roots, strict=True)]  # fail before loading
    model, config = load_model(args.checkpoint, map_location=device)
    iteration = load_checkpoint(args.checkpoint).get("iteration")
    results = []
    for name, dataset in zip(names, datasets, strict=True):
        res = evaluate(model, _limited(dataset, args.limit), mode=args.mode, flip=args.flip, crop=args.crop,
                       stride=args.stride, batch_size=args.batch_size, target_bn=args.target_bn, device=device,
                       amp=args.amp, progress=not args.quiet, num_workers=args.workers, name=name, pad=args.pad)
        res.split = args.split
        results.append(res)
    query = query_from_config(config, args.target_bn, args.paper_method) if args.compare_paper else None
    report = build_report(results, args.checkpoint, config, iteration, roots, query)
    print(format_text(report))
    written = []
    if args.out:
        written += write_outputs(report, args.out)
    if args.json:
        written.append(write_json(report, args.json))
    for path in written:
        print(f"wrote {path}")
    return 0


def _add_eval(commands: Any) -> None:
    from pinmem.data import DATASETS

    p = commands.add_parser("eval", help="score a checkpoint on target datasets (the paper's Table 1)",
                            description="Score a checkpoint: per-class IoU, mIoU and pixel accuracy per dataset.")
    p.add_argument("checkpoint", help="a pinmem checkpoint (.pt)")
    p.add_argument("--dataset", action="append", choices=sorted(DATASETS), metavar="NAME",
                   help=f"dataset name ({', '.join(sorted(DATASETS))}); repeat with --root for several targets")
    p.add_argument("--root", action="append", metavar="DIR", help="the dataset's root folder (one per --dataset)")
    p.add_argument("--split", default="val", help="split to score (default val)")
    _add_inference_options(p, "images per forward (whole; same-size images only) or windows per forward (slide)")
    p.add_argument("--target-bn", action="store_true",
                   help="BatchNorm uses the statistics of each target batch (TSMLDG); stored statistics unchanged")
    p.add_argument("--workers", type=int, default=2, help="image-reading worker processes (default 2)")
    p.add_argument("--limit", type=_positive, default=None, help="score only the first N images of each split")
    p.add_argument("--json", metavar="FILE", help="write the full results (confusion matrices included) as JSON")
    p.add_argument("--out", metavar="DIR", help="write results.json, results.csv and results.md into DIR")
    p.add_argument("--compare-paper", action="store_true",
                   help="show the paper's numbers for the checkpoint's method/sources/network beside ours")
    p.add_argument("--paper-method", metavar="NAME",
                   help="compare with this paper row instead (e.g. MLDG, 'Pin the Memory', TSMLDG)")
    p.set_defaults(func=cmd_eval)


# -- predict --------------------------------------------------------------------------------------------------
def cmd_predict(args: argparse.Namespace) -> int:
    from pinmem.evaluation.predict import predict_files
    from pinmem.inference import load

    max_side = args.max_side or None
    segmenter = load(args.checkpoint, device=args.device, mode=args.mode, flip=args.flip, crop=args.crop,
                     stride=args.stride, max_side=max_side, amp=args.amp, batch_size=args.batch_size, pad=args.pad)
    summary = predict_files(segmenter, args.inputs, args.out, memory=args.memory_map, recursive=args.recursive,
                            alpha=args.alpha, progress=not args.quiet)
    print(f"wrote {len(summary.outputs)} files for {summary.written} images to {args.out}")
    if summary.failed:
        print(f"pinmem: {len(summary.failed)} input(s) could not be processed (listed above)", file=sys.stderr)
        return 1
    return 0


def _add_predict(commands: Any) -> None:
    p = commands.add_parser("predict", help="segment images: trainId PNGs, colour masks, overlays",
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
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the colour mask (default 0.5)")
    _add_inference_options(p, "windows per forward in slide mode")
    p.set_defaults(func=cmd_predict)


# -- export ---------------------------------------------------------------------------------------------------
def _verify(path: Path, fmt: str, checkpoint: str, height: int, width: int) -> float:
    import numpy as np
    import torch

    from pinmem.engine.checkpoint import load_model

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


def _add_export(commands: Any) -> None:
    p = commands.add_parser("export", help="export a checkpoint to ONNX or TorchScript",
                            description="Export a checkpoint (memory included as a constant) to ONNX or TorchScript.")
    p.add_argument("checkpoint", help="a pinmem checkpoint (.pt)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="default onnx")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--height", type=_positive, default=512, help="example input height (shapes stay dynamic)")
    p.add_argument("--width", type=_positive, default=1024, help="example input width (shapes stay dynamic)")
    p.add_argument("--opset", type=_positive, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="ONNX: torch.export-based (dynamo, needs onnxscript), TorchScript-based (legacy), or auto")
    p.add_argument("--verify", action="store_true",
                   help="run the exported file (onnxruntime / torch.jit) and compare its logits with PyTorch")
    p.set_defaults(func=cmd_export)


# -- report ---------------------------------------------------------------------------------------------------
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
    from pinmem.engine.checkpoint import load_model
    from pinmem.evaluation.tsne import plot_tsne, sample_features
    from pinmem.inference import resolve_device

    if not args.dataset or not args.root:
        raise ConfigError("--tsne needs --dataset NAME and --root DIR for the pixels to embed")
    device = resolve_device(args.device)
    dataset = build_dataset(args.dataset, args.root, args.split)
    model, config = load_model(args.tsne, map_location=device)
    sample = sample_features(model, dataset, args.images, args.per_class, args.seed, device)
    title = f"{config.method} on {args.dataset} ({len(sample.classes)} pixels" + (
        f", {len(sample.slots)} memory slots)" if sample.slots is not None else ")")
    return plot_tsne(sample, out / f"tsne_{args.dataset}.png", args.perplexity, args.seed, title)


def _add_report(commands: Any) -> None:
    from pinmem.data import DATASETS

    p = commands.add_parser("report", help="plots and tables comparing evaluation results; t-SNE of the memory",
                            description="Per-class IoU bars and a combined table from `pinmem eval --json` files, "
                                        "and/or a t-SNE of memory slots and pixel features (--tsne).")
    p.add_argument("results", nargs="*", metavar="RESULTS.json", help="files written by `pinmem eval --json/--out`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="names of the results in the plots (one per file)")
    p.add_argument("--tsne", metavar="CHECKPOINT", help="t-SNE of this checkpoint's memory and pixel features")
    p.add_argument("--dataset", choices=sorted(DATASETS), metavar="NAME", help="dataset for the t-SNE pixels")
    p.add_argument("--root", metavar="DIR", help="its root folder")
    p.add_argument("--split", default="val", help="its split (default val)")
    p.add_argument("--images", type=_positive, default=10, help="images to sample pixels from (default 10)")
    p.add_argument("--per-class", type=_positive, default=100, help="pixels per class (default 100)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=cmd_report)


def register(subparsers: Any) -> None:
    """Add ``eval``, ``predict``, ``export`` and ``report`` to an ``argparse`` sub-parsers object."""
    _add_eval(subparsers)
    _add_predict(subparsers)
    _add_export(subparsers)
    _add_report(subparsers)
