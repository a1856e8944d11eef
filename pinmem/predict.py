"""Segment files, folders or globs of images with a :class:`~pinmem.segmenter.Segmenter` and write trainId PNGs,
colour masks, overlays (the library behind ``pinmem predict``, whose wording is in :mod:`pinmem.commands.predict`).

For an input ``photo.jpg`` the outputs are ``photo_trainid.png`` (uint8 class indices 0..N−1), ``photo_color.png``
(the checkpoint's class colours: the Cityscapes palette, a dataset.yaml's palette or generated ones),
``photo_overlay.png`` (the photo blended with the colours) and, with ``memory=True``,
``photo_memory.png`` (the most similar memory slot per pixel, in the colour of that slot's class). Inputs that
share a stem (``a/x.png``, ``b/x.jpg``) get ``x``, ``x-2``, ``x-3``… so nothing is overwritten silently.

Photos are read upright (EXIF orientation applied); grayscale, RGBA, 16-bit and CMYK files are converted to RGB.
A file that cannot be decoded, or that has more pixels than the segmenter's ``max_pixels`` (checked from the
header, before decoding), is reported (``report``) and skipped; the others are still processed.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pinmem.data.classes import ClassSet
from pinmem.data.io import read_image, write_png
from pinmem.data.labels import colorize
from pinmem.errors import CorruptFileError, PinmemError
from pinmem.segmenter import Segmenter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class InputList:
    """Resolved image files (in order, without duplicates) and the inputs that matched nothing."""

    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_inputs(inputs: Sequence[str | Path], recursive: bool = False) -> InputList:
    """Expand files, folders (their image files; sub-folders too with ``recursive``) and glob patterns."""
    result = InputList()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            result.files.append(path)

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for p in sorted(path.glob(pattern)):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    add(p)
        elif path.is_file():
            add(path)  # an explicit file is tried whatever its suffix
        elif _is_glob(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                result.missing.append(str(item))
            for m in files:
                add(m)
        else:
            result.missing.append(str(item))
    return result


def unique_stems(files: Sequence[Path]) -> list[str]:
    """Output base names: each file's stem, ``stem-2``, ``stem-3``… for later files with the same stem."""
    used: set[str] = set()
    names = []
    for f in files:
        stem, n = f.stem, 1
        name = stem
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name.lower())
        names.append(name)
    return names


def overlay(rgb: np.ndarray, colours: np.ndarray, alpha: float = 0.5, rows: int = 256) -> np.ndarray:
    """``alpha``-blend of the colour mask over the image (both H×W×3 RGB uint8), ``rows`` rows at a time so that
    a large photo needs no float copy of itself."""
    out = np.empty_like(rgb)
    for top in range(0, rgb.shape[0], rows):
        part = slice(top, top + rows)
        mixed = (1.0 - alpha) * rgb[part].astype(np.float32) + alpha * colours[part].astype(np.float32)
        out[part] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def write_prediction(out: Path, name: str, rgb: np.ndarray, train_ids: np.ndarray,
                     memory_slots: np.ndarray | None = None, alpha: float = 0.5,
                     classes: ClassSet | None = None) -> list[Path]:
    """Write the PNGs for one image (RGB arrays are converted to OpenCV's BGR order here) in the colours of
    ``classes`` (default: the Cityscapes palette)."""
    paint = colorize if classes is None else classes.colorize
    colours = paint(train_ids)
    items = [("trainid", train_ids), ("color", colours[:, :, ::-1]),
             ("overlay", overlay(rgb, colours, alpha)[:, :, ::-1])]
    if memory_slots is not None:
        items.append(("memory", paint(memory_slots)[:, :, ::-1]))
    paths = []
    for kind, array in items:
        path = out / f"{name}_{kind}.png"
        write_png(path, np.ascontiguousarray(array))
        paths.append(path)
    return paths


@dataclass
class PredictSummary:
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def predict_files(
    segmenter: Segmenter,
    inputs: Sequence[str | Path],
    out: str | Path,
    memory: bool = False,
    recursive: bool = False,
    alpha: float = 0.5,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> PredictSummary:
    """Segment every input image with ``segmenter`` into ``out``; ``memory``: also the memory-slot maps.

    An input that is missing or cannot be decoded is skipped, listed in :attr:`PredictSummary.failed` and, as it
    happens, passed to ``report`` (one line, e.g. for the command line to print); the others are still processed.
    Raises :class:`PinmemError` when nothing matches or ``memory`` is asked of a model without a memory.
    """
    report = report or (lambda line: None)
    found = collect_inputs(inputs, recursive)
    summary = PredictSummary()
    for item in found.missing:
        summary.failed.append((item, "no such file, folder or matching image"))
        report(f"{item}: no such file, folder or matching image")
    if not found.files:
        raise PinmemError(f"no images found in {', '.join(map(str, inputs))} "
                          f"(image files: {', '.join(IMAGE_SUFFIXES)})")
    if memory and not segmenter.has_memory:
        raise PinmemError("memory maps need a model with a memory module (method pinmem); this one has none")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PinmemError(f"output folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    max_pixels = segmenter.max_pixels
    classes = segmenter.classes
    names = unique_stems(found.files)
    pairs = list(zip(found.files, names, strict=True))
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="predict", unit="img")
    for path, name in pairs:
        try:
            rgb = read_image(path, orient=True, max_pixels=max_pixels)
        except CorruptFileError as err:
            summary.failed.append((str(path), str(err)))
            report(str(err))
            continue
        pred = segmenter.run(rgb, keep_logits=False, memory=memory)
        summary.outputs += write_prediction(out, name, rgb, pred.train_ids, pred.memory_slots, alpha, classes)
        summary.written += 1
    return summary
