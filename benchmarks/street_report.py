"""The street-world benchmark's reports, made from its result files alone (``dg_street.py --report`` and
``--report-budget`` call them): the table of every row with mean ± std over seeds, the released-versus-fair
comparison of the strong colour jitter, the bar chart, and the budget curve (mIoU against training iterations).

A row whose files include one from an uncommitted (``-dirty``) tree that no clean rerun reproduced is marked †;
the processors that produced a table's files are listed under it.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from pinmem.engine.method_specs import METHOD_NAMES as METHODS  # every method of the registry, in its order

SOURCES = ("gtav", "synthia")
TARGETS = ("cityscapes", "bdd100k", "mapillary")
log = logging.getLogger("dg_street")

PAPER_DELTAS = {  # Table 1 (G+S, R50 DeepLabV3+): each row minus the same paper's Baseline, C / B / M
    "mldg": (38.84 - 33.42, 31.95 - 29.07, 35.60 - 32.19),
    "pinmem": (44.51 - 33.42, 38.07 - 29.07, 42.70 - 32.19),
    # RobustNet's rows, minus RobustNet's Baseline run as quoted in Table 1
    "ibn": (35.55 - 35.46, 32.18 - 25.09, 38.09 - 31.94),
    "isw": (37.69 - 35.46, 34.09 - 25.09, 38.49 - 31.94),
}


def load_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def is_clean(result: dict[str, Any]) -> bool:
    """From a committed tree (or a dirty one whose diff was attested to be a commit: ``code_commit``), or
    reproduced to every digit by a rerun from one."""
    committed = [r.get("code_commit") or r.get("git_commit", "") for r in [result, *result.get("reproductions", [])]]
    return any(not str(c).endswith("-dirty") for c in committed)  # a reproduction from a dirty tree does not count


def machines(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``machine`` records of a result and of its reproductions."""
    found = [result.get("machine"), *(r.get("machine") for r in result.get("reproductions", []))]
    return [m for m in found if m]


def processors(result: dict[str, Any]) -> set[str]:
    """Every machine that produced (or reproduced) these numbers: 'CPU (capability)' or the GPU's name."""
    return {m.get("gpu") or f"{m['cpu']} ({m['cpu_capability']})" for m in machines(result)}


def spread(values: list[float]) -> float:
    """The sample standard deviation over seeds, 0 for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[float]]]:
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        g = groups.setdefault((r["method"], r["variant"]),
                              {k: [] for k in ("source", *TARGETS, "target", "seed", "clean")})
        g["source"].append(r["source_val_miou"])
        for t in TARGETS:
            g[t].append(r["target_miou"][t])
        g["target"].append(r["target_mean_miou"])
        g["seed"].append(r["seed"])
        g["clean"].append(float(is_clean(r)))
    return groups


def _delta(values: list[float], reference: dict[str, list[float]] | None) -> str:
    if not reference:
        return "–"
    return f"{statistics.fmean(values) - statistics.fmean(reference['target']):+.1f}"


#: the README's rows (the full table, ablations included, goes to REPORT.md and docs/results.md)
README_VARIANTS = ("main", "jitter")


def markdown_report(rows: list[dict[str, Any]], budget_name: str, variants: tuple[str, ...] | None = None) -> str:
    """The table of every (method, variant) row, or of ``variants`` only."""
    groups = summarise(rows)
    erm = groups.get(("erm", "main"))
    order = [(m, "main") for m in METHODS] + sorted(k for k in groups if k[1] != "main")
    order = [k for k in order if variants is None or k[1] in variants]
    lines = [
        f"mIoU (%) on the street world, budget `{budget_name}`; mean ± std over seeds (n = seeds). Source = mean "
        "of the gtav/synthia val splits; targets never seen in training or selection. Δ = target minus ERM's "
        "(same seeds' mean; for the scratch rows, ERM from scratch; for the jitter rows, ERM with the jitter); "
        "paper Δ = the same row minus its Baseline in Table 1 (G+S, R50; C / B / M).",
        "",
        "| method | variant | n | source val | cityscapes | bdd100k | mapillary | target mean | Δ vs erm "
        "| paper Δ (C / B / M) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    dirty = False
    for key in order:
        if key not in groups:
            continue
        g = groups[key]
        # against ERM trained the same way: the scratch and jitter rows against their ERM, the rest against main
        reference = groups.get(("erm", key[1]), erm) if key[1] in ("scratch", "jitter") else erm
        delta = _delta(g["target"], reference) if key[0] != "erm" else "–"
        paper = PAPER_DELTAS.get(key[0]) if key[1] == "main" else None
        paper_text = " / ".join(f"{d:+.1f}" for d in paper) if paper else "–"
        mark = "" if all(g["clean"]) else " †"
        dirty |= bool(mark)
        lines.append(f"| {key[0]} | {key[1]}{mark} | {len(g['seed'])} | {mean_std(g['source'])} | "
                     + " | ".join(mean_std(g[t]) for t in TARGETS)
                     + f" | {mean_std(g['target'])} | {delta} | {paper_text} |")
    lines += released_and_fair(groups)
    if dirty:
        lines += ["", "† some of the row's files name an uncommitted tree and no clean rerun has reproduced them yet "
                      "(`dg_street.py --reproduce` reruns them)."]
    rows = [r for r in rows if variants is None or r["variant"] in variants]
    machines = sorted(set().union(*(processors(r) for r in rows)))
    lines += ["", f"Processors: {'; '.join(machines) if machines else 'not recorded'}"
              + (" (files written before the machine was recorded name none)." if any("machine" not in r
                                                                                       for r in rows) else ".")]
    return "\n".join(lines)


def _on_seeds(g: dict[str, list[float]], seeds: list[float], what: str = "target") -> list[float]:
    return [v for v, seed in zip(g[what], g["seed"], strict=True) if seed in seeds]


def released_and_fair(groups: dict[tuple[str, str], dict[str, list[float]]]) -> list[str]:
    """The strong colour jitter: *as released* (mldg/pinmem with it, erm without) beside *fair* (all with it) and
    *none*, on the seeds that every one of these six rows has (so each Δ is a same-seeds difference)."""
    needed = [(m, v) for v in ("main", "jitter") for m in ("erm", "mldg", "pinmem")]
    if not all(k in groups for k in needed):
        return []
    seeds = sorted(set.intersection(*(set(groups[k]["seed"]) for k in needed)))
    if not seeds:
        return []
    cell = {k: _on_seeds(groups[k], seeds) for k in needed}

    def delta(key: tuple[str, str], reference: tuple[str, str]) -> str:
        if key[0] == "erm":
            return "–"
        return f"{statistics.fmean(cell[key]) - statistics.fmean(cell[reference]):+.1f}"

    lines = ["", "The released recipe's strong colour jitter on the first source: target mean on the seeds all six "
                 f"rows share ({', '.join(str(int(x)) for x in seeds)}); Δ vs the ERM of the same comparison.", "",
             "| method | as released | Δ | fair (all with the jitter) | Δ | none has it | Δ |",
             "|---|---|---|---|---|---|---|"]
    for m in ("erm", "mldg", "pinmem"):
        released = (m, "main" if m == "erm" else "jitter")
        lines.append(f"| {m} | {mean_std(cell[released])} | {delta(released, ('erm', 'main'))} | "
                     f"{mean_std(cell[(m, 'jitter')])} | {delta((m, 'jitter'), ('erm', 'jitter'))} | "
                     f"{mean_std(cell[(m, 'main')])} | {delta((m, 'main'), ('erm', 'main'))} |")
    return lines


def bar_chart(rows: list[dict[str, Any]], path: Path) -> None:
    from pinmem.evaluation.plots import pyplot

    plt = pyplot()
    groups = summarise(rows)
    keys = [(m, "main") for m in METHODS if (m, "main") in groups] + sorted(k for k in groups if k[1] != "main")
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(keys) + 2), 4))
    for i, key in enumerate(keys):
        values = groups[key]["target"]
        ax.bar(i, statistics.fmean(values), yerr=spread(values),
               color="tab:red" if key[0] == "pinmem" else "tab:blue", capsize=3)
    ax.set_xticks(range(len(keys)), [f"{m}\n{v}" if v != "main" else m for m, v in keys], rotation=60, fontsize=7)
    ax.set_ylabel("target mean mIoU (%)")
    ax.set_title("street world: unseen-target mIoU (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def replace_block(readme: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``readme``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{readme} has no {begin} … {end} block to replace")
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def report(folder: Path, budget_name: str, readme: Path | None, doc: Path | None = None) -> str:
    """REPORT.md and the bar chart in ``folder``; the README block gets the main and jitter rows, ``doc``'s block
    (docs/results.md) the whole table."""
    rows = load_results(folder)
    if not rows:
        raise SystemExit(f"no results in {folder}")
    text = markdown_report(rows, budget_name)
    (folder / "REPORT.md").write_text(text + "\n")
    try:
        bar_chart(rows, folder / "target_miou.png")
    except Exception as err:  # noqa: BLE001 - the plot is optional (matplotlib)
        log.warning("bar chart skipped: %s", err)
    if readme is not None:
        replace_block(readme, "dg-street", markdown_report(rows, budget_name, README_VARIANTS))
    if doc is not None:
        replace_block(doc, "dg-street", text)
    return text


# ---------------------------------------------------------------------------------------------------- budget
#: the rows of the budget curve: the paper's three methods, without and with the released jitter
CURVE_ROWS = [(m, v) for v in ("main", "jitter") for m in ("erm", "mldg", "pinmem")]


Curves = dict[tuple[str, str], dict[int, dict[str, list[float]]]]  # (method, variant) -> budget -> scores


def budget_table(folders: dict[int, Path]) -> tuple[str, Curves, dict[int, str]]:
    """mIoU against iterations: one column per budget, mean ± std (n) per method and variant; and the GPU that
    ran each budget that ran on one."""
    curves: Curves = {}
    gpus: dict[int, str] = {}
    for iterations, folder in sorted(folders.items()):
        results = load_results(folder)
        for key, g in summarise(results).items():
            if key in CURVE_ROWS:
                curves.setdefault(key, {})[iterations] = g
        gpu = sorted({m["gpu"] for r in results for m in machines(r) if m.get("gpu")})
        if gpu:
            gpus[iterations] = ", ".join(gpu)
    budgets = sorted(folders)
    heads = {n: f"{n} it." + (f" ({gpus[n]})" if n in gpus else "") for n in budgets}
    lines = ["Street world: mIoU (%) against the training budget (iterations of 4 + 4 images at 160², the same lr "
             "and poly schedule over each budget); mean ± std over seeds (n). A budget in brackets names the GPU "
             "that ran it (the others: the 2-core CPU).", "",
             "| method | variant | " + " | ".join(f"{heads[n]} target | {heads[n]} source" for n in budgets) + " |",
             "|---|---|" + "---|---|" * len(budgets)]
    for key in CURVE_ROWS:
        if key not in curves:
            continue
        cells = []
        for n in budgets:
            g = curves[key].get(n)
            cells += ([f"{mean_std(g['target'])} ({len(g['seed'])})", mean_std(g["source"])] if g else ["–", "–"])
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines), curves, gpus


def budget_plot(curves: Curves, path: Path, gpus: dict[int, str] | None = None) -> None:
    from pinmem.evaluation.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    colours = {"erm": "tab:blue", "mldg": "tab:green", "pinmem": "tab:red"}
    for (method, variant), points in sorted(curves.items()):
        budgets = sorted(points)
        for ax, what in zip(axes, ("target", "source"), strict=True):
            means = [statistics.fmean(points[n][what]) for n in budgets]
            stds = [spread(points[n][what]) for n in budgets]
            ax.errorbar(budgets, means, yerr=stds, marker="o", capsize=3, color=colours[method],
                        linestyle="-" if variant == "main" else "--", label=f"{method} ({variant})")
    for ax, what in zip(axes, ("unseen targets (mean of 3)", "source val (mean of 2)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("training iterations")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(what)
    axes[0].legend(fontsize=7)
    on_gpu = "; ".join(f"{n} it. on {name}" for n, name in sorted((gpus or {}).items()))
    fig.suptitle("street world: mIoU against the training budget (mean ± std over seeds)"
                 + (f"\n(2-core CPU; {on_gpu})" if on_gpu else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_budget(folders: dict[int, Path], out: Path, readme: Path | None, doc: Path | None = None) -> str:
    text, curves, gpus = budget_table(folders)
    if not curves:
        raise SystemExit(f"no results in {', '.join(map(str, folders.values()))}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "BUDGET.md").write_text(text + "\n")
    try:
        budget_plot(curves, out / "budget_curve.png", gpus)
    except Exception as err:  # noqa: BLE001 - the plot is optional (matplotlib)
        log.warning("budget plot skipped: %s", err)
    for path in (readme, doc):
        if path is not None:
            replace_block(path, "dg-budget", text)
    return text
