"""Per-class IoU bar charts comparing several evaluation reports (matplotlib, Agg backend, PNG).

matplotlib is an optional dependency (``pip install matplotlib``); without it a :class:`PlotDependencyError`
says what to install.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pinmem.errors import PinmemError
from pinmem.evaluation.report import report_classes, target_label


class PlotDependencyError(PinmemError):
    """An optional plotting dependency is not installed."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or a clear error naming the package."""
    try:
        import matplotlib
    except ImportError as err:
        raise PlotDependencyError(
            "plots need matplotlib, which is not installed: pip install matplotlib (or pip install 'pinmem[plots]')"
        ) from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _value(v: float | None) -> float:
    return float("nan") if v is None else 100.0 * float(v)


def iou_bar_chart(
    reports: Sequence[dict[str, Any]], labels: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """One panel per target; per class a group of bars, one per report (IoU in %), mIoU in the legend.

    Targets are matched by dataset name across reports; a report that lacks a target leaves its bar out.
    """
    plt = pyplot()
    targets: list[str] = []
    for rep in reports:
        for e in rep["results"]:
            if e.get("dataset") not in targets:
                targets.append(e.get("dataset"))
    names = list(dict.fromkeys(c for rep in reports for c in report_classes(rep)))  # every report's classes
    n, k = len(names), max(1, len(reports))
    fig, axes = plt.subplots(len(targets), 1, figsize=(max(10.0, 0.55 * n * max(1, k / 2)), 3.6 * len(targets)),
                             squeeze=False)
    width = 0.8 / k
    x = np.arange(n)
    colours = plt.get_cmap("tab10")
    for ax, target in zip(axes[:, 0], targets, strict=True):
        name = None
        for j, (rep, label) in enumerate(zip(reports, labels, strict=True)):
            entry = next((e for e in rep["results"] if e.get("dataset") == target), None)
            if entry is None:
                continue
            name = name or target_label(entry, [entry])
            values = [_value(entry["iou"].get(c)) for c in names]
            miou = entry.get("miou")
            legend = f"{label} (mIoU {100 * miou:.1f})" if miou is not None and not math.isnan(miou) else label
            ax.bar(x - 0.4 + width * (j + 0.5), values, width, label=legend, color=colours(j % 10))
        ax.set_title(name or str(target))
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_ylabel("IoU (%)")
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, n - 0.4)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
