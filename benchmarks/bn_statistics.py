"""Are a street-world checkpoint's BatchNorm running statistics the ones its weights need? Each checkpoint is scored
twice with the grid's protocol: with the statistics training left (what every row of the grid reports: read from
the run's grid result file when there is one), and with statistics recomputed on source training images under
the final weights (precise BN, :func:`pinmem.evaluation.inference.recompute_bn_statistics`). Only source images
enter the recomputation, so the second score is still a source-only model; the targets only measure.

    python benchmarks/bn_statistics.py runs/street/reproduce/efficientnet_lite0_i300_c160_b4_lr0.05/*-main-s30?
    python benchmarks/bn_statistics.py --report        # the table, from results/street/bn_statistics/

Writes ``results/street/bn_statistics/<budget>/<run>.json`` per run (skipped when it exists): both scores per
domain, and a per-layer probe on the first 16 gtav val images — the median over channels of (variance of the
layer's input) / (its running variance) with the stored statistics, 1 when they agree; a value near 0 means the
running statistics are far wider than what the final weights produce there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dg_street import SOURCES, TARGETS, evaluate_model  # noqa: E402
from measurement import add_allow_dirty_argument, machine_info, provenance, write_json_atomic  # noqa: E402

from pinmem.data import build_dataset  # noqa: E402
from pinmem.evaluation.inference import BATCHNORM_TYPES, recompute_bn_statistics  # noqa: E402
from pinmem.training.checkpoint import load_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "results" / "street" / "bn_statistics"


def source_batches(world: Path, batches: int, per_source: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """``batches`` batches of ``per_source`` training images from each source (whole images, the evaluation's
    normalisation), drawn without replacement in a seeded order."""
    domains = [build_dataset(name, world / name, "train") for name in SOURCES]
    generator = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(len(d), generator=generator).tolist() for d in domains]
    for b in range(batches):
        images = []
        for dataset, order in zip(domains, orders, strict=True):
            images += [dataset[order[(b * per_source + i) % len(order)]]["image"] for i in range(per_source)]
        yield torch.stack(images)


@torch.no_grad()
def variance_ratios(model: torch.nn.Module, images: torch.Tensor) -> dict[str, float | None]:
    """Per BatchNorm layer (eval mode): median over channels of var(input) / running_var."""
    ratios: dict[str, float | None] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, BATCHNORM_TYPES):
            def hook(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                values = args[0].transpose(0, 1).flatten(1)
                if values.shape[1] < 2:  # one value per channel (a pooled 1×1 map of one image): no variance
                    ratios[name] = None
                    return
                ratios[name] = round(float((values.var(1) / (mod.running_var + mod.eps)).median()), 4)
            handles.append(module.register_forward_pre_hook(hook))
    model.eval()
    try:
        model(images)
    finally:
        for h in handles:
            h.remove()
    return ratios


def summary(scores: dict[str, Any]) -> dict[str, Any]:
    return {"source_val_miou": statistics.fmean(scores[s]["miou"] for s in SOURCES),
            "target_mean_miou": statistics.fmean(scores[t]["miou"] for t in TARGETS),
            "miou": {d: scores[d]["miou"] for d in (*SOURCES, *TARGETS)}}


def measure(run_dir: Path, world: Path, batches: int, per_source: int, record: dict[str, Any],
            grid_results: Path) -> dict[str, Any]:
    start = time.time()
    roots = {name: world / name for name in (*SOURCES, *TARGETS)}
    model = load_model(run_dir / "checkpoints" / "last.pt").model
    val = build_dataset("gtav", roots["gtav"], "val")
    probe = torch.stack([val[i]["image"] for i in range(min(16, len(val)))])
    grid_file = grid_results / run_dir.parent.name / f"{run_dir.name}.json"
    if grid_file.is_file():  # the grid's evaluation of this checkpoint: the same protocol, not rerun
        row = json.loads(grid_file.read_text())
        scores = {d: {"miou": m} for d, m in (*row["source_miou"].items(), *row["target_miou"].items())}
    else:
        scores = evaluate_model(model, roots)
    stored = {"ratios": variance_ratios(model, probe), **summary(scores),
              "from": _shown(grid_file) if grid_file.is_file() else "evaluated here"}
    used = recompute_bn_statistics(model, source_batches(world, batches, per_source))
    recomputed = {"ratios": variance_ratios(model, probe), **summary(evaluate_model(model, roots))}
    return {"run": run_dir.name, "budget": run_dir.parent.name, "checkpoint": str(run_dir / "checkpoints/last.pt"),
            "stored": stored, "recomputed": recomputed,
            "recomputation": {"batches": used, "images_per_source": per_source, "sources": list(SOURCES),
                              "split": "train", "images": "whole, native size"},
            "wall_s": round(time.time() - start, 1), **record}


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)


def report(out: Path) -> str:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in sorted(out.glob("*/*.json")):
        result = json.loads(path.read_text())
        method = result["run"].rsplit("-s", 1)[0]
        rows.setdefault((result["budget"], method), []).append(result)
    lines = ["| budget | run | n | source, stored | source, recomputed | target, stored | target, recomputed "
             "| Δ target |", "|---|---|---|---|---|---|---|---|"]

    def ms(values: list[float]) -> str:
        return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 \
            else f"{values[0]:.1f}"

    for (budget, method), results in sorted(rows.items(), key=lambda kv: (int(kv[0][0].split("_i")[1].split("_")[0]),
                                                                         kv[0][1])):
        get = {(k, w): [r[k][w] for r in results] for k in ("stored", "recomputed")
               for w in ("source_val_miou", "target_mean_miou")}
        delta = [r["recomputed"]["target_mean_miou"] - r["stored"]["target_mean_miou"] for r in results]
        lines.append(f"| {budget.split('_')[2]} | {method} | {len(results)} | {ms(get['stored', 'source_val_miou'])} "
                     f"| {ms(get['recomputed', 'source_val_miou'])} | {ms(get['stored', 'target_mean_miou'])} "
                     f"| {ms(get['recomputed', 'target_mean_miou'])} | {ms(delta)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (holding checkpoints/last.pt)")
    parser.add_argument("--world", type=Path, default=Path("runs/street/world"))
    parser.add_argument("--batches", type=int, default=50, help="batches for the recomputation (default 50)")
    parser.add_argument("--per-source", type=int, default=4, help="images per source in a batch (default 4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--grid-results", type=Path, default=REPO / "results" / "street",
                        help="the grid's result files: a run's stored-statistics score is read from its file there "
                             "(the grid's evaluation of the same checkpoint) instead of evaluated again")
    parser.add_argument("--report", action="store_true", help="print the table of the results in --out")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    if args.report:
        print(report(args.out))
        return
    torch.set_num_threads(args.threads)
    record = {**provenance(args.allow_dirty), "machine": machine_info("cpu"), "torch_threads": args.threads,
              "command": " ".join(["python", "benchmarks/bn_statistics.py", *sys.argv[1:]])}
    for run_dir in args.runs:
        path = args.out / run_dir.parent.name / f"{run_dir.name}.json"
        if path.exists():
            print(f"{path} exists: skipped")
            continue
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise SystemExit(f"{run_dir / 'checkpoints' / 'last.pt'}: no checkpoint")
        result = measure(run_dir, args.world, args.batches, args.per_source,
                         {**record, "finished": None}, args.grid_results)
        result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_json_atomic(path, result)
        print(f"{run_dir.name}: target {result['stored']['target_mean_miou']:.1f} stored, "
              f"{result['recomputed']['target_mean_miou']:.1f} recomputed; source "
              f"{result['stored']['source_val_miou']:.1f} / {result['recomputed']['source_val_miou']:.1f} -> {path}",
              flush=True)


if __name__ == "__main__":
    main()
