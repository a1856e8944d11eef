"""The paper's comparison on the procedural street world: sources gtav+synthia, unseen targets the cityscapes,
bdd100k and mapillary styles; every method with several seeds, plus the ablations of the paper's analysis.

    python benchmarks/dg_street.py                      # run every missing run of the grid, in priority order
    python benchmarks/dg_street.py --only pinmem-main-s304 erm-main-s304
    python benchmarks/dg_street.py --list               # the grid and which results exist
    python benchmarks/dg_street.py --report --update-readme README.md
    python benchmarks/dg_street.py --lr 0.05 --iterations 1000 --methods erm mldg pinmem --variants main
    python benchmarks/dg_street.py --lr 0.05 --reproduce   # rerun the rows whose file names no clean commit

Each run writes ``results/street/<budget>/<run>.json`` when it finishes; a run whose JSON exists is skipped, so
the grid fills over several sessions. Each file names the commit and the machine (processor, torch's CPU
kernels, GPU) it came from. ``--reproduce`` retrains the runs whose file names an uncommitted (``-dirty``) tree:
the same numbers to every digit add a ``reproductions`` entry to the file, other numbers replace
it (the old ones kept under ``replaces``). Checkpoints stay in ``runs/street/`` (not in git); runs of 1,000
iterations or more write one every tenth of the run and resume from it. The world is generated once into
``runs/street/world``, checked against its committed manifest (``results/street/world/``: SHA-256 of every
file), and scored with its own protocol (its ``synth.json``: whole image at native size). No setting is chosen
on the targets: the budget is fixed by wall time, the learning rate by leave-one-domain-out on the sources
(``--select-lr``: train on gtav, validate on synthia). Reports: ``street_report.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from measurement import add_allow_dirty_argument, machine_info, provenance, write_json_atomic
from street_report import is_clean, report, report_budget, spread

from pinmem.engine.method_specs import METHOD_NAMES as METHODS  # every method, in the registry order

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("gtav", "synthia")
TARGETS = ("cityscapes", "bdd100k", "mapillary")
SEEDS = (304, 305, 306)
log = logging.getLogger("dg_street")


@dataclass(frozen=True)
class Budget:
    """What one run costs; chosen by wall time on the 2-core CPU (docs/results.md)."""

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    iterations: int = 300
    crop: int = 160
    batch_per_domain: int = 4
    lr: float = 0.01
    world_size: tuple[int, int] = (320, 160)
    num_train: int = 500
    num_val: int = 100
    device: str = "cpu"

    @property
    def name(self) -> str:
        scratch = "" if self.pretrained else "_scratch"
        return f"{self.backbone}{scratch}_i{self.iterations}_c{self.crop}_b{self.batch_per_domain}_lr{self.lr:g}"


@dataclass(frozen=True)
class Variant:
    """A row of the grid: the methods it applies to, how many seeds, and its config overrides (training;
    ``eval_overrides`` change only the evaluation, so the run reuses the training of ``train_as``)."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()
    eval_overrides: tuple[str, ...] = ()
    pretrained: bool = True
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "main": Variant(METHODS, SEEDS, description="the paper's Table 1 rows"),
    # The released pipeline's hidden augmentation (docs/method.md §6): ColorJitter(0.8, 0.8, 0.8, 0.3) at p = 1 on
    # the first source, which the released code gives MLDG and Pin the Memory only. mldg/pinmem with it against
    # erm-main is the comparison *as released*; all three with it is the *fair* one.
    "jitter": Variant(("erm", "mldg", "pinmem"), SEEDS, ("data.strong_jitter=first_source",),
                      description="the released strong colour jitter on the first source (gtav)"),
    "ibn_backbone": Variant(("pinmem",), SEEDS, ("model.norm=ibn",),
                            description="Pin the Memory on the IBN backbone (no paper reports it)"),
    "isw_backbone": Variant(("pinmem",), SEEDS, ("model.norm=isw",),
                            description="Pin the Memory on the instance-whitening backbone, without the ISW loss"),
    "bn_shared": Variant(("pinmem", "mldg"), SEEDS, ("meta.isolate_bn_stats=false",),
                         description="the meta-test forward on θ′ also updates the BN running statistics"),
    "no_meta": Variant(("pinmem",), SEEDS, ("pinmem.meta_learning=false",),
                       description="memory without meta-learning (one combined batch, one write)"),
    "no_coh": Variant(("pinmem",), SEEDS, ("pinmem.lambda_coh=0",), description="without L_coh"),
    "no_div": Variant(("pinmem",), SEEDS, ("pinmem.lambda_div=0",), description="without L_div (G unused)"),
    "no_gumbel_train": Variant(("pinmem",), SEEDS, ("pinmem.gumbel=false",),
                               description="plain softmax read in training"),
    "gumbel_test": Variant(("pinmem",), SEEDS, eval_overrides=("model.gumbel_at_eval=true",),
                           description="the released code's Gumbel noise at test time (main run's weights)"),
    "scratch": Variant(("erm", "mldg", "pinmem"), SEEDS, pretrained=False, description="backbone from scratch"),
    # A peaked, class-specific read: τ = 0.1 and no Gumbel noise, beside no_gumbel_train (τ = 1, no noise). τ was
    # fixed before any run from the measured range of s (docs/results.md §1), not tuned: a slot whose cosine leads
    # the other 18 by 0.3 then gets over half the weight (e^3 = 20 > 18). The noise goes too, because argmax(s + g)
    # samples from softmax(s) whatever τ is (the Gumbel-max trick): with it, a small τ reads one random slot.
    "no_gumbel_low_tau": Variant(("pinmem",), SEEDS, ("pinmem.temperature=0.1", "pinmem.gumbel=false"),
                                 description="τ = 0.1 in the read and L_coh, no Gumbel noise (the paper: τ = 1)"),
}


@dataclass(frozen=True)
class Run:
    method: str
    variant: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.method}-{self.variant}-s{self.seed}"

    @property
    def spec(self) -> Variant:
        return VARIANTS[self.variant]

    @property
    def train_key(self) -> str:
        """Runs whose training is the same share one checkpoint (``gumbel_test`` evaluates the main run)."""
        return Run(self.method, "main", self.seed).key if not self.spec.overrides and self.spec.pretrained \
            else self.key


def grid() -> list[Run]:
    """Every run, in the order they are run: the main and jitter rows seed by seed (so a partial grid stays
    balanced), then the first seed of every other variant, then the rest."""
    runs = [Run(m, v, s) for s in SEEDS for v in ("main", "jitter") for m in VARIANTS[v].methods]
    first, rest = [], []
    for name, variant in VARIANTS.items():
        if name in ("main", "jitter"):
            continue
        for i, seed in enumerate(variant.seeds):
            for m in variant.methods:
                (first if i == 0 else rest).append(Run(m, name, seed))
    return runs + first + rest


# ---------------------------------------------------------------------------------------------------- running
def world_roots(budget: Budget, out: Path, manifests: Path, workers: int = 2) -> dict[str, Path]:
    """Generate the world (once; in ``workers`` processes, which do not change its files) and check it, file by
    file, against its committed manifest in ``manifests`` (``results/street/world/``; written there on a new
    world's first use)."""
    from pinmem.synth.world import generate_world

    counts = {n: (budget.num_train if n in SOURCES else 0) for n in (*SOURCES, *TARGETS)}
    roots = generate_world(out, styles=(*SOURCES, *TARGETS), num_train=counts, num_val=budget.num_val,
                           size=budget.world_size, seed=0, workers=workers, progress=False)
    check_world(out, manifests / f"{world_name(budget)}.sha256")
    return roots


def world_name(budget: Budget) -> str:
    width, height = budget.world_size
    return f"world_{width}x{height}_train{budget.num_train}_val{budget.num_val}"


def world_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by path relative to it (``sha256sum``'s format when written)."""
    return {"./" + p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def check_world(root: Path, manifest: Path) -> None:
    """Refuse a world whose files differ from the committed manifest (written on first use of a new world)."""
    found = world_digests(root)
    if not manifest.is_file():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("".join(f"{digest}  {path}\n" for path, digest in found.items()))
        log.info("recorded the world's manifest in %s (%d files): commit it", manifest, len(found))
        return
    expected = dict(reversed(line.split("  ", 1)) for line in manifest.read_text().splitlines() if line)
    differ = sorted(p for p in expected.keys() | found.keys() if expected.get(p) != found.get(p))
    if differ:
        raise SystemExit(f"the world in {root} differs from {manifest} in {len(differ)} of {len(expected)} files "
                         f"(first: {', '.join(differ[:3])}): results from it would not be comparable with the "
                         "committed ones; delete the world folder to regenerate it, or find what changed "
                         "(the generator, a library, the machine)")


def train_overrides(budget: Budget, run: Run, data_root: Path, out_dir: Path) -> list[str]:
    spec = run.spec
    weights = "imagenet" if (budget.pretrained and spec.pretrained) else "null"
    iterations_per_epoch = budget.num_train // budget.batch_per_domain
    isw_start = max(1, round(0.12 * budget.iterations / iterations_per_epoch))  # released: epoch 5 of 41 ≈ 12 %
    return [
        f"method={run.method}", f"model.backbone={budget.backbone}", f"model.backbone_weights={weights}",
        f"data.root={data_root}", f"data.sources=[{','.join(SOURCES)}]", "data.targets=[]", "data.num_workers=0",
        f"data.epoch_length={budget.num_train}", f"train.iterations={budget.iterations}",
        f"train.crop_size={budget.crop}", f"train.batch_per_domain={budget.batch_per_domain}",
        f"train.lr={budget.lr}", "train.schedule=poly", f"train.seed={run.seed}", f"train.out_dir={out_dir}",
        "train.progress=false", "train.log_every=25",
        f"pinmem.init_images={budget.num_train}",
        f"isw.start_epoch={isw_start}", "isw.trials=2", "isw.images_per_trial=50",
        f"train.device={budget.device}", f"train.ckpt_every={checkpoint_every(budget)}",
        *spec.overrides,
    ]


def checkpoint_every(budget: Budget) -> int:
    """Long runs keep a checkpoint every tenth of the run, so an interruption loses at most that much."""
    return budget.iterations // 10 if budget.iterations >= 1000 else 0


def evaluate_checkpoint(checkpoint: Path, roots: dict[str, Path], eval_overrides: tuple[str, ...],
                        device: str = "cpu") -> dict[str, Any]:
    from pinmem.training.checkpoint import load_model

    model = load_model(checkpoint).model
    for item in eval_overrides:
        if item == "model.gumbel_at_eval=true" and model.memory is not None:
            model.memory.gumbel_eval = True
        elif item != "model.gumbel_at_eval=true":
            raise ValueError(f"unsupported evaluation override {item}")
    return evaluate_model(model, roots, device)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, roots: dict[str, Path], device: str = "cpu") -> dict[str, Any]:
    """mIoU (%) and per-class IoU of ``model`` on every domain's val split: the grid's protocol."""
    from pinmem.data import build_dataset
    from pinmem.evaluation.evaluate import evaluate

    scores: dict[str, Any] = {}
    for name in (*SOURCES, *TARGETS):
        torch.manual_seed(0)  # the Gumbel draws of gumbel_test
        result = evaluate(model, build_dataset(name, roots[name], "val"), mode="whole", batch_size=8, name=name,
                          device=device)
        scores[name] = {"miou": 100 * result.miou,
                        "per_class": {c: (None if math.isnan(v) else round(100 * float(v), 3))
                                      for c, v in zip(result.metrics.classes, result.metrics.iou, strict=True)}}
    return scores


_PROVENANCE: dict[str, Any] = {}


def process_provenance(allow_dirty: bool = False) -> dict[str, Any]:
    """The code this process runs, taken at its first call (at start-up, before any run): HEAD, and on an
    uncommitted tree a refusal unless ``allow_dirty`` (measurement.provenance); recorded in every result file."""
    if not _PROVENANCE:
        _PROVENANCE.update(provenance(allow_dirty))
    return dict(_PROVENANCE)


def run_one(budget: Budget, run: Run, results: Path, work: Path, argv: list[str],
            reproduce: bool = False) -> dict[str, Any]:
    """Train (or resume, or reuse the finished checkpoint of) ``run``, evaluate it, write its result file;
    ``reproduce``: train anew in ``work/reproduce`` (never reuse a checkpoint of the run being checked)."""
    from pinmem.engine.config import load_config
    from pinmem.training.checkpoint import open_resume
    from pinmem.training.trainer import Trainer

    roots = world_roots(budget, work / "world", results.parent / "world")
    out_dir = work / ("reproduce" if reproduce else "") / budget.name / run.train_key
    checkpoint = out_dir / "checkpoints" / "last.pt"
    start = time.time()
    overrides = train_overrides(budget, Run(run.method, run.variant if run.train_key == run.key else "main",
                                            run.seed), work / "world", out_dir)
    trained_here, resumed_from = False, None
    if not _finished(checkpoint, budget.iterations):
        resume = open_resume(None, overrides, checkpoint) if checkpoint.is_file() else None  # an interrupted run
        resumed_from = int(resume.checkpoint["iteration"]) if resume else None
        Trainer(resume.config if resume else load_config(None, overrides), resume).fit()
        trained_here = True
    train_s = time.time() - start
    scores = evaluate_checkpoint(checkpoint, roots, run.spec.eval_overrides, budget.device)
    result = {
        "method": run.method, "variant": run.variant, "seed": run.seed, "backbone": budget.backbone,
        "pretrained": budget.pretrained and run.spec.pretrained, "iterations": budget.iterations,
        "crop": budget.crop, "batch_per_domain": budget.batch_per_domain, "lr": budget.lr,
        "overrides": list(run.spec.overrides), "eval_overrides": list(run.spec.eval_overrides),
        "description": run.spec.description,
        "source_val_miou": statistics.fmean(scores[s]["miou"] for s in SOURCES),
        "source_miou": {s: scores[s]["miou"] for s in SOURCES},
        "target_miou": {t: scores[t]["miou"] for t in TARGETS},
        "target_mean_miou": statistics.fmean(scores[t]["miou"] for t in TARGETS),
        "per_class": {n: scores[n]["per_class"] for n in (*SOURCES, *TARGETS)},
        "protocol": "street world val splits, whole image at native size (the world's synth.json)",
        "world": world_name(budget),
        "wall_s": round(time.time() - start, 1), "train_s": round(train_s, 1) if trained_here else None,
        "resumed_from": resumed_from,
        "torch_threads": torch.get_num_threads(), "machine": machine_info(budget.device),
        **process_provenance(), "command": shlex.join(["python", "benchmarks/dg_street.py", *argv,
                                                               "--only", run.key]),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return settle(results / f"{run.key}.json", result)


#: what must agree, to every digit, for a rerun to reproduce a result
SCORES = ("source_miou", "target_miou")


def needs_reproduction(path: Path) -> bool:
    """A result whose file names an uncommitted (``-dirty``) tree, and no clean reproduction of it."""
    return not is_clean(json.loads(path.read_text()))


def settle(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``result`` to ``path`` atomically. Where a result exists (``--reproduce``): the same scores add a
    reproduction to it and keep its numbers; other scores replace it, keeping the old ones under ``replaces``."""
    if path.is_file():
        old = json.loads(path.read_text())
        if all(old[k] == result[k] for k in SCORES):
            old.setdefault("reproductions", []).append(
                {k: result[k] for k in ("git_commit", "dirty", "diff_sha256", "machine", "finished", "train_s",
                                        "command") if k in result})
            result = old
        else:
            result["replaces"] = {k: old.get(k) for k in ("git_commit", "finished", *SCORES, "source_val_miou",
                                                          "target_mean_miou")}
    write_json_atomic(path, result)
    return result


def _finished(checkpoint: Path, iterations: int) -> bool:
    if not checkpoint.is_file():
        return False
    from pinmem.training.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint)["iteration"]) >= iterations


# ---------------------------------------------------------------------------------------------------- lr choice
def select_lr(budget: Budget, work: Path, results: Path, candidates: list[float],
              seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    """Leave-one-domain-out on the sources: ERM trained on gtav only, scored on synthia's val split, one run per
    (lr, seed); the chosen lr has the best mean over the seeds. Returns the summary that ``summary.json`` holds."""
    from pinmem.data import build_dataset
    from pinmem.engine.config import load_config
    from pinmem.evaluation.evaluate import evaluate
    from pinmem.training.checkpoint import load_model
    from pinmem.training.trainer import Trainer

    roots = world_roots(budget, work / "world", results / "world")
    scores: dict[str, dict[str, float]] = {}
    for lr in candidates:
        for seed in seeds:
            path = results / "lr_selection" / f"erm-gtav-to-synthia-lr{lr:g}-s{seed}.json"
            if path.is_file():
                miou = json.loads(path.read_text())["synthia_val_miou"]
            else:
                out_dir = work / "lr_selection" / f"lr{lr:g}-s{seed}"
                overrides = train_overrides(budget, Run("erm", "main", seed), work / "world", out_dir)
                overrides = [o for o in overrides if not o.startswith(("data.sources=", "train.lr="))]
                overrides += ["data.sources=[gtav]", f"train.lr={lr}",
                              f"train.batch_per_domain={2 * budget.batch_per_domain}"]
                start = time.time()
                Trainer(load_config(None, overrides)).fit()
                model = load_model(out_dir / "checkpoints" / "last.pt").model
                miou = 100 * evaluate(model, build_dataset("synthia", roots["synthia"], "val"), batch_size=8).miou
                write_json_atomic(path, {"lr": lr, "seed": seed, "synthia_val_miou": miou, "train": "gtav",
                                         "validate": "synthia val", "budget": budget.name,
                                         "wall_s": round(time.time() - start, 1), **process_provenance(),
                                         "machine": machine_info(budget.device),
                                         "overrides": overrides})
                log.info("lr %g, seed %d: synthia val mIoU %.2f", lr, seed, miou)
            scores.setdefault(f"{lr:g}", {})[str(seed)] = miou
    return lr_selection_summary(scores)


def lr_selection_summary(scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Mean and std over seeds per lr (std 0 for one seed), and the lr with the best mean."""
    mean = {lr: statistics.fmean(v.values()) for lr, v in scores.items()}
    std = {lr: spread(list(v.values())) for lr, v in scores.items()}
    return {"chosen": max(mean, key=mean.__getitem__), "mean": mean, "std": std, "seeds": scores,
            "train": "gtav", "validate": "synthia val"}


#: the budgets ``device_street.sh --iterations auto`` chooses from, largest first
PLANNED_BUDGETS = (5000, 3000, 2000, 1000, 500)


def seconds_per_iteration(log_file: Path, iterations: int, train_s: float | None) -> float:
    """A run's training speed: the slope between its first and last logged iterations (``log.jsonl``; the first
    iterations' warm-up left out), else its whole training time over ``iterations``."""
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()] \
        if log_file.is_file() else []
    times = [(r["iteration"], r["time"]) for r in records if r.get("kind") == "train"]
    if len(times) >= 2 and times[-1][0] > times[0][0]:
        return (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0])
    if train_s is None:
        raise SystemExit(f"{log_file}: no timing to plan from (the probe did not train)")
    return train_s / iterations


def plan_iterations(budget: Budget, results: Path, work: Path, probe_seconds: float, seconds_left: float,
                    margin: float = 1.15, choices: tuple[int, ...] = PLANNED_BUDGETS) -> int:
    """The largest budget in ``choices`` whose runs, in parallel as the probe's were, end within ``seconds_left``
    (with ``margin``): the probe (``budget``, its results in ``results``) took ``probe_seconds`` in all, of which
    its slowest run trained ``budget.iterations`` iterations; the rest (start, world check, evaluation) is fixed."""
    files = sorted((results / budget.name).glob("*.json"))
    if not files:
        raise SystemExit(f"no probe result in {results / budget.name}: every probe run failed (see its logs)")
    slowest = 0.0
    for path in files:
        result = json.loads(path.read_text())
        train_key = Run(result["method"], result["variant"], result["seed"]).train_key
        slowest = max(slowest, seconds_per_iteration(work / budget.name / train_key / "log.jsonl",
                                                     budget.iterations, result.get("train_s")))
    fixed = max(0.0, probe_seconds - budget.iterations * slowest)
    for n in choices:
        if margin * (fixed + n * slowest) <= seconds_left:
            log.info("plan: %.3f s/iteration (slowest run), %.0f s fixed: %d iterations in %.0f of %.0f s",
                     slowest, fixed, n, fixed + n * slowest, seconds_left)
            return n
    raise SystemExit(f"no budget of {choices} fits in {seconds_left:.0f} s at {slowest:.3f} s/iteration "
                     f"and {fixed:.0f} s fixed: give a later --deadline or fewer runs")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="RUN", help="run only these (e.g. pinmem-main-s304)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="run only these variants")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="run only these methods")
    parser.add_argument("--reproduce", action="store_true",
                        help="retrain the selected runs whose file names a -dirty tree, and record "
                             "whether they reproduce (the same scores to every digit) or replace it")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs")
    parser.add_argument("--list", action="store_true", help="print the grid and which results exist")
    parser.add_argument("--prepare-world", action="store_true",
                        help="only generate and check the world (before starting runs in parallel)")
    parser.add_argument("--plan-iterations", type=float, default=None, metavar="PROBE_SECONDS",
                        help="print the largest budget of --plan-budgets that fits in --seconds-left, from a probe "
                             "of this budget (its results in --results, its runs in --work) that took PROBE_SECONDS "
                             "in all")
    parser.add_argument("--seconds-left", type=float, default=None, help="with --plan-iterations")
    parser.add_argument("--plan-budgets", type=int, nargs="+", default=list(PLANNED_BUDGETS), metavar="N",
                        help="with --plan-iterations: the budgets to choose from, largest first")
    parser.add_argument("--world-workers", type=int, default=2, metavar="N",
                        help="with --prepare-world: render in N processes (the files do not depend on N)")
    parser.add_argument("--report", action="store_true", help="write REPORT.md and the bar chart from the JSONs")
    parser.add_argument("--update-readme", type=Path, default=None,
                        help="with --report or --report-budget: replace the README's block (main and jitter rows)")
    parser.add_argument("--update-doc", type=Path, default=None,
                        help="with --report or --report-budget: replace the block of this page (docs/results.md) "
                             "with the whole table")
    parser.add_argument("--report-budget", nargs="+", type=int, metavar="ITERATIONS",
                        help="the budget curve over these iteration counts (this lr, crop, backbone): "
                             "BUDGET.md and budget_curve.png in --results")
    parser.add_argument("--select-lr", nargs="*", type=float, default=None,
                        help="leave-one-domain-out lr selection (gtav -> synthia val) over these values")
    parser.add_argument("--select-seeds", nargs="+", type=int, default=list(SEEDS), metavar="SEED",
                        help="with --select-lr: the seeds of each candidate (the best mean over them is chosen)")
    parser.add_argument("--iterations", type=int, default=Budget.iterations)
    parser.add_argument("--crop", type=int, default=Budget.crop)
    parser.add_argument("--lr", type=float, default=Budget.lr)
    parser.add_argument("--backbone", default=Budget.backbone)
    parser.add_argument("--scratch", action="store_true", help="no pretrained backbone for any run")
    parser.add_argument("--num-train", type=int, default=Budget.num_train)
    parser.add_argument("--num-val", type=int, default=Budget.num_val)
    parser.add_argument("--results", type=Path, default=REPO / "results" / "street")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "street")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="train and evaluate here (cpu, cuda, cuda:N)")
    parser.add_argument("--world-size", type=int, nargs=2, default=Budget.world_size, metavar=("WIDTH", "HEIGHT"))
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not (args.prepare_world or args.report or args.report_budget or args.list or args.plan_iterations):
        process_provenance(args.allow_dirty)  # the code this process runs, recorded in every result it writes
    torch.set_num_threads(args.threads)
    budget = Budget(backbone=args.backbone, pretrained=not args.scratch, iterations=args.iterations,
                    crop=args.crop, lr=args.lr, num_train=args.num_train, num_val=args.num_val,
                    device=args.device, world_size=tuple(args.world_size))
    folder = args.results / budget.name
    budget_argv = _strip_selection(argv)
    if args.select_lr is not None:
        summary = select_lr(budget, args.work, args.results, args.select_lr or [0.005, 0.01, 0.02, 0.05],
                            tuple(args.select_seeds))
        write_json_atomic(args.results / "lr_selection" / "summary.json", summary)
        print(json.dumps(summary, indent=1))
        return
    if args.plan_iterations is not None:
        if args.seconds_left is None:
            parser.error("--plan-iterations needs --seconds-left")
        print(plan_iterations(budget, args.results, args.work, args.plan_iterations, args.seconds_left,
                              choices=tuple(args.plan_budgets)))
        return
    if args.prepare_world:
        world_roots(budget, args.work / "world", args.results / "world", args.world_workers)
        return
    if args.report:
        print(report(folder, budget.name, args.update_readme, args.update_doc))
        return
    if args.report_budget:
        folders = {n: _budget_folder(args.results, replace(budget, iterations=n).name) for n in args.report_budget}
        print(report_budget(folders, args.results, args.update_readme, args.update_doc))
        return
    runs = grid()
    if args.only:
        known = {r.key: r for r in runs}
        unknown = [k for k in args.only if k not in known]
        if unknown:
            raise SystemExit(f"unknown run(s) {unknown}; --list shows the grid")
        runs = [known[k] for k in args.only]
    if args.variants:
        runs = [r for r in runs if r.variant in args.variants]
    if args.methods:
        runs = [r for r in runs if r.method in args.methods]
    if args.list:
        for r in runs:
            path = folder / f"{r.key}.json"
            state = ("to reproduce" if needs_reproduction(path) else "done") if path.is_file() else ""
            print(f"{state:12}  {r.key}")
        return
    done = 0
    for r in runs:
        path = folder / f"{r.key}.json"
        if path.is_file() and not (args.reproduce and needs_reproduction(path)):
            continue
        if args.reproduce and not path.is_file():
            continue
        if args.max_runs is not None and done >= args.max_runs:
            break
        log.info("%s %s (%s)", "reproduce" if args.reproduce else "run", r.key, budget.name)
        result = run_one(budget, r, folder, args.work, budget_argv, reproduce=args.reproduce)
        log.info("%s: source %.2f, targets %s, %.0f s", r.key, result["source_val_miou"],
                 {t: round(v, 2) for t, v in result["target_miou"].items()}, result["wall_s"])
        done += 1


def _budget_folder(results: Path, name: str) -> Path:
    """A budget's results: the CPU grid's folder, else the GPU edition's (``gpu/``, device_street.sh)."""
    folder = results / name
    return folder if folder.is_dir() or not (results / "gpu" / name).is_dir() else results / "gpu" / name


def _strip_selection(argv: list[str]) -> list[str]:
    """The budget arguments of this command line (what the recorded per-run command repeats)."""
    kept, skip = [], False
    for a in argv:
        if a in ("--only", "--variants", "--methods", "--max-runs", "--reproduce"):
            skip = True
            continue
        if a.startswith("--"):
            skip = False
        if not skip:
            kept.append(a)
    return kept


if __name__ == "__main__":
    main()
