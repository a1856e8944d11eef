"""`pinmem demo`: the whole pipeline on the procedural street world, on a laptop CPU, in minutes.

1. write the street world (``gtav`` and ``synthia`` styles as sources with train and val splits; ``cityscapes``,
   ``bdd100k`` and ``mapillary`` styles as unseen targets with val splits) in the datasets' native formats;
2. train each method (``erm`` and ``pinmem`` by default) on the two sources with a small backbone;
3. evaluate every model on the sources' val splits and on the targets with the world's protocol (its
   ``synth.json``: whole image at the images' own size — the real Mapillary protocol's 1536-pixel resize is
   meant for real photos, not renders; ``pinmem eval`` on the same world applies the same protocol);
4. print the Table-1-style comparison and write a report folder: Markdown, JSON, a per-class IoU plot and a few
   predictions side by side with the ground truth.

Everything is deterministic for a seed; a step whose output already exists with the same settings is reused,
so a second run only re-evaluates.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pinmem.data import build_dataset
from pinmem.data.labels import colorize
from pinmem.data.transforms import EvalTransform
from pinmem.evaluation.report import text_table

log = logging.getLogger("pinmem")

SOURCES = ("gtav", "synthia")
TARGETS = ("cityscapes", "bdd100k", "mapillary")


@dataclass
class DemoSettings:
    """Sizes chosen so that the demo, set-up included, finishes in under 8 minutes on a 2-core CPU.

    The backbone is EfficientNet-Lite0 with its packaged ImageNet weights: at the street-world benchmark's
    setting it beats the same network from scratch by 14 target mIoU for the same time (docs/results.md), and the
    same page compares this demo with the earlier ResNet-18-from-scratch one. lr 0.05 is the benchmark's, chosen
    on the sources (train on gtav, score on synthia). 150 iterations of 112² crops (the benchmark's: 300 of 160²),
    300 training scenes and 50 val images per source (100 per target) keep it under 8 minutes on the slower of the
    2-core machines we measured (docs/performance.md, "Whole processes and the demo"); 130 iterations were too
    few (4–6 % target mIoU: the short-budget collapse of docs/results.md).
    Speed settings (docs/results.md, the demo paragraphs): one loader worker; the evaluation runs channels-last
    (0.74× its time on the 2-core CPU; logits equal to float rounding). Training stays in the default layout:
    from a fresh clone, channels-last training took erm 136 s instead of 146 s and pinmem 186 s as before
    (``results/demo/*_s304.json``), while its float32 gradients of EfficientNet-Lite0 on this CPU are 2.6×
    further from float64's (``benchmarks/channels_last_gradients.py``) and the one-seed numbers then move as much
    as another seed would (``--channels-last``).
    """

    out: Path = Path("runs/demo")
    methods: tuple[str, ...] = ("erm", "pinmem")
    backbone: str = "efficientnet_lite0"
    #: ``imagenet`` for the packaged EfficientNet-Lite0 weights, a local file for a ResNet, None from scratch
    backbone_weights: str | None = "imagenet"
    iterations: int = 150
    crop: int = 112
    batch_per_domain: int = 4
    lr: float = 0.05
    num_train: int = 300
    #: val images per target style, and per source style (the sources' scores only check that training worked)
    num_val: int = 100
    num_val_sources: int = 50
    size: tuple[int, int] = (320, 160)
    seed: int = 304
    #: world-generation processes
    workers: int = 2
    #: DataLoader worker processes while training (one overlaps reading with the step on a 2-core machine)
    loader_workers: int = 1
    #: train in the channels-last layout (the evaluation always is)
    channels_last: bool = False
    #: the methods train and evaluate in this many processes at once, the cores shared out as torch threads; None:
    #: one per method, up to the cores. 1 (in turn, in this process, with progress bars) is the default: on the
    #: 2-core CPU, two one-thread processes took 1.00× the time of one two-thread process
    #: (``benchmarks/bench_demo.py``, docs/performance.md)
    processes: int | None = 1
    examples: int = 2
    progress: bool = True
    extra_overrides: tuple[str, ...] = field(default_factory=tuple)


def demo_overrides(settings: DemoSettings, method: str) -> list[str]:
    """The training configuration of one demo run, as ``key=value`` overrides of the typed defaults."""
    return [
        f"method={method}", f"model.backbone={settings.backbone}",
        f"model.backbone_weights={settings.backbone_weights or 'null'}", f"data.root={settings.out / 'data'}",
        f"data.sources=[{','.join(SOURCES)}]", "data.targets=[]", f"data.num_workers={settings.loader_workers}",
        f"train.channels_last={str(settings.channels_last).lower()}",
        f"data.epoch_length={settings.num_train}", f"train.iterations={settings.iterations}",
        f"train.crop_size={settings.crop}", f"train.batch_per_domain={settings.batch_per_domain}",
        f"train.lr={settings.lr}", "train.schedule=poly", f"train.seed={settings.seed}",
        f"train.out_dir={settings.out / 'runs' / method}", f"train.progress={str(settings.progress).lower()}",
        f"pinmem.init_images={4 * settings.batch_per_domain * 8}", "train.log_every=10",
        *settings.extra_overrides,
    ]


def make_world(settings: DemoSettings) -> dict[str, Path]:
    from pinmem.synth.world import generate_world

    counts = {name: (settings.num_train if name in SOURCES else 0) for name in (*SOURCES, *TARGETS)}
    return generate_world(settings.out / "data", styles=(*SOURCES, *TARGETS), num_train=counts,
                          num_val={n: settings.num_val_sources if n in SOURCES else settings.num_val for n in counts},
                          size=settings.size, seed=0, workers=settings.workers,
                          progress=settings.progress)


def train(settings: DemoSettings, method: str) -> Path:
    """Train one method, or reuse a finished run with the same configuration; returns its checkpoint."""
    from pinmem.engine.config import load_config, to_dict
    from pinmem.training.checkpoint import load_checkpoint
    from pinmem.training.trainer import Trainer

    config = load_config(None, demo_overrides(settings, method))
    checkpoint = Path(config.train.out_dir) / "checkpoints" / "last.pt"
    if checkpoint.is_file():
        previous = load_checkpoint(checkpoint)
        if previous["config"] == to_dict(config) and previous["iteration"] == config.train.iterations:
            log.info("%s: reusing the finished run in %s", method, checkpoint.parent.parent)
            return checkpoint
    Trainer(config).fit()
    return checkpoint


def evaluate_run(checkpoint: Path, roots: dict[str, Path], progress: bool) -> dict[str, Any]:
    """The report of one checkpoint on the sources' and targets' val splits (whole image, native size)."""
    from pinmem.evaluation.evaluate import evaluate
    from pinmem.evaluation.report import build_report
    from pinmem.training.checkpoint import load_model

    loaded = load_model(checkpoint)
    model, config = loaded.model, loaded.config
    results = []
    for name in (*SOURCES, *TARGETS):
        dataset = build_dataset(name, roots[name], "val")  # the world's protocol (its synth.json)
        results.append(evaluate(model, dataset, mode="whole", batch_size=8, channels_last=True,
                                progress=progress, name=name))
    return build_report(results, checkpoint=str(checkpoint), config=config,
                        roots=[str(roots[n]) for n in (*SOURCES, *TARGETS)])


def _miou(report: dict[str, Any], name: str) -> float:
    return next(e["miou"] for e in report["results"] if e["dataset"] == name)


def summary(reports: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]], dict[str, dict[str, float]]]:
    """Rows = methods; columns = source val mIoU, target mIoU, their means and the gap (in %)."""
    header = ["method", *(f"{s} (val)" for s in SOURCES), "source mean", *TARGETS, "target mean", "gap"]
    rows, numbers = [], {}
    for method, report in reports.items():
        src = [100 * _miou(report, s) for s in SOURCES]
        tgt = [100 * _miou(report, t) for t in TARGETS]
        numbers[method] = {"source_mean": float(np.mean(src)), "target_mean": float(np.mean(tgt)),
                           **{s: v for s, v in zip(SOURCES, src, strict=True)},
                           **{t: v for t, v in zip(TARGETS, tgt, strict=True)}}
        numbers[method]["gap"] = numbers[method]["source_mean"] - numbers[method]["target_mean"]
        rows.append([method, *(f"{v:.1f}" for v in src), f"{np.mean(src):.1f}", *(f"{v:.1f}" for v in tgt),
                     f"{np.mean(tgt):.1f}", f"{numbers[method]['gap']:.1f}"])
    return header, rows, numbers


def save_examples(checkpoints: dict[str, Path], roots: dict[str, Path], out: Path, count: int) -> list[Path]:
    """For ``count`` val images of each target: image | ground truth | each method's prediction, one PNG."""
    import cv2

    from pinmem.segmenter import load

    segmenters = {m: load(p) for m, p in checkpoints.items()}
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for name in TARGETS:
        dataset = build_dataset(name, roots[name], "val", transform=EvalTransform())
        for index in range(min(count, len(dataset))):
            image, label = dataset.load_pair(index)
            panels = [image, colorize(label)] + [colorize(s.predict(image)) for s in segmenters.values()]
            path = out / f"{name}_{index}.png"
            cv2.imwrite(str(path), np.concatenate(panels, axis=1)[:, :, ::-1])
            written.append(path)
    return written


def write_report(settings: DemoSettings, reports: dict[str, dict[str, Any]], checkpoints: dict[str, Path],
                 roots: dict[str, Path]) -> Path:
    from pinmem.evaluation.report import format_combined_markdown, markdown_table, write_json

    folder = settings.out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    header, rows, numbers = summary(reports)
    for method, report in reports.items():
        write_json(report, folder / f"{method}.json")
    (folder / "summary.json").write_text(json.dumps(
        {"settings": {k: str(v) for k, v in asdict(settings).items()}, "miou_percent": numbers}, indent=2))
    examples = save_examples(checkpoints, roots, folder / "examples", settings.examples)
    plot_line = ""
    try:
        from pinmem.evaluation.plots import iou_bar_chart

        iou_bar_chart(list(reports.values()), list(reports), folder / "per_class_iou.png",
                      title="pinmem demo: per-class IoU")
        plot_line = "![per-class IoU](per_class_iou.png)\n\n"
    except Exception as err:  # matplotlib is optional
        log.warning("per-class plot skipped: %s", err)
    lines = [
        "# pinmem demo: domain generalisation on the procedural street world", "",
        f"Sources {', '.join(SOURCES)} (train split), unseen targets {', '.join(TARGETS)} (val split); "
        f"{settings.backbone} DeepLabV3+, {settings.iterations} iterations of {settings.batch_per_domain} "
        f"{settings.crop}² crops per domain, seed {settings.seed}. mIoU in %, whole image at native size; "
        "gap = source mean − target mean.", "",
        markdown_table(header, rows), "",
        plot_line + "Examples (image | ground truth | " + " | ".join(reports) + "):", "",
        *[f"![{p.stem}](examples/{p.name})" for p in examples], "",
        format_combined_markdown(list(reports.values()), list(reports), [str(p) for p in checkpoints.values()]),
    ]
    (folder / "report.md").write_text("\n".join(lines))
    return folder


def _train_and_evaluate(settings: DemoSettings, method: str, roots: dict[str, Path],
                        threads: int) -> tuple[Path, dict[str, Any], float, float]:
    """One method's training and evaluation with ``threads`` torch threads: the body of a demo process."""
    import torch

    torch.set_num_threads(threads)
    clock = time.perf_counter()
    checkpoint = train(settings, method)
    trained = time.perf_counter()
    report = evaluate_run(checkpoint, roots, settings.progress)
    return checkpoint, report, trained - clock, time.perf_counter() - trained


def _last_iteration(settings: DemoSettings, method: str) -> int:
    """The last iteration a run has logged (its ``log.jsonl``), 0 before the first."""
    log_file = settings.out / "runs" / method / "log.jsonl"
    try:
        lines = log_file.read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("iteration", 0))
        except (ValueError, AttributeError):
            continue
    return 0


def _in_parallel(settings: DemoSettings, roots: dict[str, Path], processes: int,
                 ) -> dict[str, tuple[Path, dict[str, Any], float, float]]:
    """Every method in its own process (``processes`` at a time, the cores shared out as threads); without
    progress bars, which would interleave, but with a line of each run's iteration every 20 s."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    quiet = replace(settings, progress=False)
    done: dict[str, tuple[Path, dict[str, Any], float, float]] = {}
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {pool.submit(_train_and_evaluate, quiet, m, roots, threads): m for m in settings.methods}
        while running:
            finished, _ = wait(running, timeout=20, return_when=FIRST_COMPLETED)
            for future in finished:
                method = running.pop(future)
                done[method] = future.result()
                print(f"      {method}: trained in {done[method][2]:.0f} s, evaluated in {done[method][3]:.0f} s",
                      flush=True)
            if running and settings.progress:
                print("      " + ", ".join(f"{m} {_last_iteration(settings, m)}/{settings.iterations}"
                                           for m in running.values()), flush=True)
    return {m: done[m] for m in settings.methods}


def run_demo(settings: DemoSettings) -> dict[str, dict[str, float]]:
    """The whole demo; returns mIoU (%) per method and domain, prints the table, writes the report."""
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        stages[stage] = time.perf_counter() - clock
        clock = time.perf_counter()
        print(f"      {stage}: {stages[stage]:.0f} s", flush=True)

    print(f"[1/4] procedural street world -> {settings.out / 'data'}", flush=True)
    roots = make_world(settings)
    done("world")
    processes = min(len(settings.methods), os.cpu_count() or 1) if settings.processes is None \
        else min(settings.processes, len(settings.methods))
    if processes > 1:
        print(f"[2-3/4] training and evaluating {', '.join(settings.methods)} in {processes} processes at once",
              flush=True)
        results = _in_parallel(settings, roots, processes)
        checkpoints = {m: r[0] for m, r in results.items()}
        reports = {m: r[1] for m, r in results.items()}
        done("train + evaluate")
    else:
        checkpoints = {}
        for i, method in enumerate(settings.methods):
            print(f"[2/4] training {method} ({i + 1}/{len(settings.methods)})", flush=True)
            checkpoints[method] = train(settings, method)
            done(f"train {method}")
        print("[3/4] evaluating on the sources' val splits and the unseen targets", flush=True)
        reports = {m: evaluate_run(p, roots, settings.progress) for m, p in checkpoints.items()}
        done("evaluate")
    print("[4/4] report", flush=True)
    folder = write_report(settings, reports, checkpoints, roots)
    done("report")
    summary_file = folder / "summary.json"  # the wall time per stage joins the numbers it produced
    summary_file.write_text(json.dumps({**json.loads(summary_file.read_text()),
                                        "wall_s": {k: round(v, 1) for k, v in stages.items()}}, indent=2))
    header, rows, numbers = summary(reports)
    print("\nmIoU (%), whole image, native size\n" + text_table(header, rows))  # the one table printer
    print(f"\nwall time {sum(stages.values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
          + ")")
    print(f"report: {folder / 'report.md'}")
    return numbers
