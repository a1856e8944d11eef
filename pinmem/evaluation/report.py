"""Evaluation reports: the JSON written by ``pinmem eval`` and the Table 1-shaped tables made from it.

A report is a plain dict (``format: "pinmem-eval"``) holding the checkpoint, how predictions were made and one
entry per target with per-class IoU, mIoU, pixel accuracy and the confusion matrix. IoUs are stored as
fractions in [0, 1] (``null`` where undefined); tables show percentages.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pinmem.data.labels import CLASSES
from pinmem.errors import PinmemError
from pinmem.evaluation.evaluate import EvalResult
from pinmem.evaluation.paper import TARGET_NAMES, PaperQuery, find_paper_rows

FORMAT = "pinmem-eval"
VERSION = 1
#: column titles of the datasets (the paper's spelling for the three targets)
DISPLAY_NAMES = {**TARGET_NAMES, "gtav": "GTAV", "synthia": "SYNTHIA", "idd": "IDD"}
#: the 16 classes SYNTHIA is often scored on (no terrain, truck, train: docs/method.md §7)
SYNTHIA_16 = tuple(c for c in CLASSES if c not in ("terrain", "truck", "train"))


class ReportError(PinmemError):
    """A results file cannot be read or is not a pinmem evaluation report."""


def build_report(
    results: Sequence[EvalResult],
    checkpoint: str = "",
    config: Any = None,
    iteration: int | None = None,
    roots: Sequence[str] | None = None,
    paper_query: PaperQuery | None = None,
) -> dict[str, Any]:
    """The JSON-ready report of one checkpoint on several targets (``paper_query``: add the paper's rows)."""
    targets = []
    for i, res in enumerate(results):
        entry = res.to_dict()
        if res.dataset == "synthia" and all(c in entry["iou"] for c in SYNTHIA_16):
            entry["miou_16"] = _mean([entry["iou"][c] for c in SYNTHIA_16])
        if roots is not None:
            entry["root"] = str(roots[i])
        targets.append(entry)
    report: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "checkpoint": str(checkpoint),
        "iteration": iteration,
        "classes": list(results[0].metrics.classes) if results else list(CLASSES),
        "results": targets,
    }
    if config is not None:
        from pinmem.evaluation.paper import network_name, sources_key

        report.update(method=config.method, sources=list(config.data.sources),
                      sources_key=sources_key(config.data.sources),
                      network=network_name(config.model.arch, config.model.backbone))
    if results:
        report["settings"] = results[0].settings.to_dict()
    if paper_query is not None:
        rows = find_paper_rows(paper_query)
        report["paper"] = {
            "query": paper_query.describe(),
            "rows": {t: {"method": r.method, "sources": r.sources, "network": r.network, "table": r.table,
                         "miou": r.miou / 100,
                         "iou": {c: (None if v is None else v / 100) for c, v in zip(CLASSES, r.iou, strict=True)}}
                     for t, r in rows.items()},
        }
    return report


def report_classes(report: dict[str, Any]) -> tuple[str, ...]:
    """The class names of a report (reports written before class sets were recorded: the 19 Cityscapes ones)."""
    names = report.get("classes")
    return tuple(names) if isinstance(names, list) and names else CLASSES


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report written by ``pinmem eval``; a clear :class:`ReportError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"results file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path} is not a JSON file: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("results"), list):
        raise ReportError(f"{path} is not a pinmem evaluation report (write one with `pinmem eval --json`)")
    for entry in data["results"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("iou"), dict) or "miou" not in entry:
            raise ReportError(f"{path}: a result entry lacks per-class 'iou' or 'miou'")
    return data


# -- tables ---------------------------------------------------------------------------------------------------
def target_label(entry: dict[str, Any], all_entries: Sequence[dict[str, Any]]) -> str:
    """Column title: the paper's dataset name, plus the split when one dataset appears more than once."""
    name = entry.get("dataset", "?")
    label = DISPLAY_NAMES.get(name, name)
    if sum(1 for e in all_entries if e.get("dataset") == name) > 1:
        label += f" ({entry.get('split', '')})"
    return label


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None and not math.isnan(v)]
    return sum(defined) / len(defined) if defined else None


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (classes, then mIoU and pixel accuracy) in percent; ``paper`` columns when present."""
    entries = report["results"]
    paper = (report.get("paper") or {}).get("rows", {})
    with_paper = bool(report.get("paper"))
    header = ["class"]
    for e in entries:
        header.append(target_label(e, entries))
        if with_paper:
            header.append("paper")
    multi = len(entries) > 1
    if multi:
        header.append("mean")
        if with_paper:
            header.append("paper")

    def paper_value(e: dict[str, Any], cls: str | None) -> float | None:
        row = paper.get(e.get("dataset"))
        if row is None:
            return None
        return row["miou"] if cls is None else row["iou"].get(cls)

    def paper_mean(cls: str | None) -> float | None:
        values = [paper_value(e, cls) for e in entries]
        return None if any(v is None for v in values) else _mean(values)

    rows = []
    for cls in report_classes(report):
        row = [cls]
        for e in entries:
            row.append(_pct(e["iou"].get(cls)))
            if with_paper:
                row.append(_pct(paper_value(e, cls)))
        if multi:
            row.append(_pct(_mean([e["iou"].get(cls) for e in entries])))
            if with_paper:
                row.append(_pct(paper_mean(cls)))
        rows.append(row)
    row = ["mIoU"]
    for e in entries:
        row.append(_pct(e["miou"], 2))
        if with_paper:
            row.append(_pct(paper_value(e, None), 2))
    if multi:
        row.append(_pct(_mean([e["miou"] for e in entries]), 2))
        if with_paper:
            row.append(_pct(paper_mean(None), 2))
    rows.append(row)
    row = ["pixel acc."]
    for e in entries:
        row.append(_pct(e.get("pixel_accuracy"), 2))
        if with_paper:
            row.append("-")
    if multi:
        row.append(_pct(_mean([e.get("pixel_accuracy") for e in entries]), 2))
        if with_paper:
            row.append("-")
    rows.append(row)
    return header, rows


def header_lines(report: dict[str, Any]) -> list[str]:
    """What the numbers are: checkpoint, training setup, evaluation mode, images per target, paper match."""
    lines = [f"checkpoint: {report.get('checkpoint', '')}"
             + (f" (iteration {report['iteration']})" if report.get("iteration") is not None else "")]
    if report.get("method"):
        lines.append(f"trained: method {report['method']}, sources {report.get('sources_key', '')}, "
                     f"{report.get('network', '')}")
    settings = report.get("settings") or {}
    if settings:
        lines.append(f"evaluation: {settings.get('description', settings.get('mode'))}")
    counts = ", ".join(f"{target_label(e, report['results'])} {e.get('split', '')} {e.get('num_images', '?')}"
                       for e in report["results"])
    lines.append(f"images: {counts}")
    for e in report["results"]:
        if e.get("dataset") == "synthia" and "miou_16" in e:
            lines.append(f"SYNTHIA: the table scores 19 classes; over the 16 classes without terrain, truck and "
                         f"train the mIoU is {_pct(e['miou_16'], 2)}")
    paper = report.get("paper")
    if paper is not None:
        rows = paper.get("rows", {})
        missing = [DISPLAY_NAMES.get(e.get("dataset"), e.get("dataset")) for e in report["results"]
                   if e.get("dataset") not in rows]
        if not rows:
            lines.append(f"paper: no reported row for {paper.get('query')}")
        else:
            first = next(iter(rows.values()))
            lines.append(f"paper: {first['method']}, {first['sources']}, {first['network']} (Table "
                         f"{first['table']}; the paper does not say whether whole-image or sliding-window "
                         f"evaluation produced it)")
            if missing:
                lines.append(f"paper: nothing reported for {', '.join(missing)}")
    return lines


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], rule_before: Sequence[int] = ()) -> str:
    """The terminal table: fixed-width columns, the first (the row names) left-aligned and the others right-aligned,
    a rule under the header and before each row index in ``rule_before``."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = [f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])]
    rule = "  ".join("-" * w for w in widths)
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, header, strict=True)), rule]
    for k, row in enumerate(rows):
        if k in rule_before:
            lines.append(rule)
        lines.append("  ".join(f.format(v) for f, v in zip(fmt, row, strict=True)))
    return "\n".join(lines)


def format_text(report: dict[str, Any]) -> str:
    """The terminal table (fixed-width columns) with its header lines."""
    header, rows = table_rows(report)
    return "\n".join([*header_lines(report), "", text_table(header, rows, rule_before=(len(report_classes(report)),))])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        cells = [f"**{c}**" if row[0] == "mIoU" else c for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(report: dict[str, Any]) -> str:
    header, rows = table_rows(report)
    notes = "\n".join(f"- {line}" for line in header_lines(report))
    return f"# Evaluation\n\n{notes}\n\nIoU in %.\n\n{markdown_table(header, rows)}\n"


def format_csv(report: dict[str, Any]) -> str:
    """One row per (target, class) plus mIoU and pixel accuracy rows; percentages."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    paper = (report.get("paper") or {}).get("rows", {})
    settings = report.get("settings") or {}
    writer.writerow(["dataset", "split", "mode", "flip", "images", "class", "iou_percent", "paper_iou_percent"])
    for e in report["results"]:
        prow = paper.get(e.get("dataset"))
        base = [e.get("dataset"), e.get("split"), settings.get("mode"), settings.get("flip"), e.get("num_images")]
        for cls in report_classes(report):
            pv = None if prow is None else prow["iou"].get(cls)
            writer.writerow([*base, cls, _pct(e["iou"].get(cls), 2), _pct(pv, 2) if prow else ""])
        writer.writerow([*base, "mIoU", _pct(e["miou"], 2), _pct(prow["miou"], 2) if prow else ""])
        writer.writerow([*base, "pixel_accuracy", _pct(e.get("pixel_accuracy"), 2), ""])
    return buf.getvalue()


def write_report_files(report: dict[str, Any], out_dir: str | Path, stem: str = "results") -> list[Path]:
    """``<stem>.json``, ``<stem>.csv`` and ``<stem>.md`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json(report, out / f"{stem}.json")]
    for suffix, text in (("csv", format_csv(report)), ("md", format_markdown(report))):
        path = out / f"{stem}.{suffix}"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


# -- several reports side by side ---------------------------------------------------------------------------
def report_label(report: dict[str, Any], path: str | Path) -> str:
    """A short name for a report in comparisons: its method and network, else the file's stem."""
    if report.get("method"):
        return f"{report['method']} {report.get('sources_key', '')} {report.get('network', '')}".strip()
    return Path(path).stem


def combined_rows(
    reports: Sequence[dict[str, Any]], labels: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Classes × (result, target) in percent, with mIoU last."""
    header = ["class"]
    columns: list[dict[str, Any]] = []
    for rep, label in zip(reports, labels, strict=True):
        for e in rep["results"]:
            header.append(f"{label} / {target_label(e, rep['results'])}")
            columns.append(e)
    names = list(dict.fromkeys(c for rep in reports for c in report_classes(rep)))  # every report's, in order
    rows = [[cls, *(_pct(e["iou"].get(cls)) for e in columns)] for cls in names]
    rows.append(["mIoU", *(_pct(e["miou"], 2) for e in columns)])
    return header, rows


def format_combined_markdown(reports: Sequence[dict[str, Any]], labels: Sequence[str],
                             paths: Sequence[str | Path]) -> str:
    header, rows = combined_rows(reports, labels)
    sources = []
    for rep, label, path in zip(reports, labels, paths, strict=True):
        desc = (rep.get("settings") or {}).get("description", "mode not recorded")
        sources.append(f"- **{label}**: `{path}` ({desc})")
    return "# Comparison\n\n" + "\n".join(sources) + "\n\nIoU in %.\n\n" + markdown_table(header, rows) + "\n"
