"""`pinmem data check`: verify a dataset on disk before training or evaluating on it.

Checks the layout (through the loader), that every image has a label, that both decode, that their sizes agree
and that label values are ids the dataset defines. Prints counts and the class pixel frequencies. Every bad file
is listed; the check goes on past them and fails at the end.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from pinmem.data import build_dataset
from pinmem.data.base import SegmentationDataset, no_transform
from pinmem.data.labels import CLASSES, IGNORE, NUM_CLASSES
from pinmem.errors import PinmemError


@dataclass
class PairResult:
    """What checking one image/label pair found."""

    index: int
    image_size: tuple[int, int] | None = None  # (width, height)
    label_size: tuple[int, int] | None = None
    class_pixels: np.ndarray | None = None  # bincount of trainIds, 256 entries
    unknown_ids: list[int | str] = field(default_factory=list)
    error: str | None = None


@dataclass
class CheckReport:
    """The outcome of checking one dataset split."""

    dataset: str
    split: str
    root: str
    pairs: int
    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    unknown_values: dict[str, list[int | str]] = field(default_factory=dict)
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, dtype=np.int64))
    classes: tuple[str, ...] = CLASSES
    ignore_pixels: int = 0
    image_sizes: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """No file that training would stop on (``data.on_bad_sample=stop``): corrupt files, size mismatches
        (training drops those beforehand) and label values outside the dataset's table all fail the check."""
        return not self.corrupt and not self.size_mismatch and not self.unknown_values


def check_pair(dataset: SegmentationDataset, index: int) -> PairResult:
    """Decode pair ``index`` and collect its sizes, class histogram and unknown native ids."""
    result = PairResult(index)
    try:
        image = dataset.load_image(index)
        result.image_size = (image.shape[1], image.shape[0])
        inspect = getattr(dataset, "inspect_label", None)
        if inspect is not None:  # a folder dataset: its encoding decides (train_ids, ids or palette)
            train_ids, result.unknown_ids = inspect(dataset.files[index][1])
            result.label_size = (train_ids.shape[1], train_ids.shape[0])
            result.class_pixels = np.bincount(train_ids.ravel(), minlength=256)
            return result
        native = dataset.read_native_label(dataset.files[index][1])
        if native.ndim != 2:
            raise PinmemError(f"label {dataset.files[index][1]} has shape {native.shape}, expected H×W")
        result.label_size = (native.shape[1], native.shape[0])
        values = np.unique(native)
        result.unknown_ids = [int(v) for v in values if int(v) not in dataset.known_ids]
        train_ids = dataset.lookup()[np.clip(native, 0, 65535)]
        result.class_pixels = np.bincount(train_ids.ravel(), minlength=256)
    except PinmemError as err:
        result.error = str(err)
    return result


def _check_chunk(args: tuple[SegmentationDataset, list[int]]) -> list[PairResult]:
    dataset, indices = args
    return [check_pair(dataset, i) for i in indices]


def check_dataset(
    name: str, root: str, split: str = "all", limit: int | None = None, workers: int = 1, progress: bool = True
) -> CheckReport:
    """Check ``limit`` pairs (all by default) of a dataset split; layout errors raise, file errors are collected."""
    dataset = build_dataset(name, root, split, transform=no_transform)
    indices = list(range(len(dataset)))[: limit if limit else None]
    report = CheckReport(dataset=dataset.name, split=split, root=str(dataset.root), pairs=len(dataset),
                         class_pixels=np.zeros(len(dataset.classes), dtype=np.int64), classes=tuple(dataset.classes))
    chunks = [indices[i : i + 16] for i in range(0, len(indices), 16)]
    bar = tqdm(total=len(indices), desc=f"checking {dataset.name}/{split}", unit="img", disable=not progress)
    if workers > 1:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_check_chunk, [(dataset, c) for c in chunks])
    else:
        pool = None
        results = (_check_chunk((dataset, c)) for c in chunks)
    try:
        for chunk in results:
            for res in chunk:
                _add(report, dataset, res)
            bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return report


def _add(report: CheckReport, dataset: SegmentationDataset, res: PairResult) -> None:
    image_path, label_path = dataset.files[res.index]
    report.checked += 1
    if res.error is not None:
        report.corrupt.append(res.error)
        return
    if res.image_size != res.label_size:
        report.size_mismatch.append(
            f"{image_path} is {res.image_size[0]}×{res.image_size[1]}, "
            f"label {label_path} is {res.label_size[0]}×{res.label_size[1]}"
        )
    report.image_sizes[res.image_size] += 1
    if res.unknown_ids:
        report.unknown_values[str(label_path)] = res.unknown_ids
    report.class_pixels += res.class_pixels[: len(report.classes)]
    report.ignore_pixels += int(res.class_pixels[IGNORE])


def format_report(report: CheckReport, max_listed: int = 20) -> str:
    """A human-readable summary: counts, problems (each bad file named) and class pixel frequencies."""
    lines = [
        f"dataset {report.dataset}, split {report.split}, root {report.root}",
        f"  pairs found: {report.pairs}; checked: {report.checked}",
        "  image sizes: " + ", ".join(f"{w}×{h} ({n})" for (w, h), n in report.image_sizes.most_common(5)),
    ]
    for title, items in (("corrupt or unreadable files", report.corrupt),
                         ("image/label size mismatches (skipped in training)", report.size_mismatch)):
        if items:
            lines.append(f"  {len(items)} {title}:")
            lines += [f"    {item}" for item in items[:max_listed]]
            if len(items) > max_listed:
                lines.append(f"    ... and {len(items) - max_listed} more")
    if report.unknown_values:
        lines.append(f"  {len(report.unknown_values)} label files hold values the dataset does not define "
                     "(training stops on them, or skips them with data.on_bad_sample=skip; evaluation reads "
                     "them as ignore, 255):")
        for path, ids in list(report.unknown_values.items())[:max_listed]:
            lines.append(f"    {path}: {ids[:10]}")
    total = int(report.class_pixels.sum()) + report.ignore_pixels
    if total:
        lines.append("  class pixel frequencies (% of all pixels):")
        width = max(14, *(len(n) for n in report.classes))
        for c, name in enumerate(report.classes):
            lines.append(f"    {c:2d} {name:<{width}s} {100.0 * report.class_pixels[c] / total:7.3f}")
        lines.append(f"    -- {'ignore':<{width}s} {100.0 * report.ignore_pixels / total:7.3f}")
    lines.append("  OK" if report.ok else "  FAILED: see the files listed above")
    return "\n".join(lines)
