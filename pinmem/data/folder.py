"""A folder of images and labels described by ``dataset.yaml``: the user's own domain (docs/own-data.md).

::

    my_domain/
      dataset.yaml                          # classes, label encoding, optional palette and splits
      images/train/…   labels/train/…       # paired by the path below the split folder minus the suffix
      images/val/…     labels/val/…

Labels decode to class indices 0..N−1 (255 = ignore) by one of three encodings: ``train_ids`` (the values are the
class indices; ``ignore_index`` is ignore), ``ids`` (``id_to_train`` maps values; unlisted ones are ignore) or
``palette`` (RGB colours, one per class; ``ignore_colours`` are ignore; any other colour is an error, or ignore
with ``unknown_colour: ignore``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pinmem.data.base import SegmentationDataset, Transform
from pinmem.data.io import read_label_indices
from pinmem.data.labels import IGNORE
from pinmem.data.spec import DATASET_FILE, FolderSpec, load_spec
from pinmem.errors import CorruptFileError, DatasetLayoutError

LAYOUT = f"""ROOT/{DATASET_FILE}
ROOT/images/<split>/**/<name>.<png|jpg|jpeg|webp>
ROOT/labels/<split>/**/<name>.png   (see docs/own-data.md)"""
#: how many offending values or colours an error message shows
SHOWN = 6


def read_label_rgb(path: Path) -> np.ndarray:
    """A label file as H×W×3 uint8 RGB (palette PNGs give their colours)."""
    if not path.is_file():
        raise CorruptFileError(f"label file not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as err:  # Pillow raises many types for bad files
        raise CorruptFileError(f"cannot decode label {path}: {err}") from err


def _keys(colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    arr = np.asarray(colours, dtype=np.int64).reshape(-1, 3)
    return (arr[:, 0] << 16) | (arr[:, 1] << 8) | arr[:, 2]


def _show_colour(key: int) -> str:
    return f"[{key >> 16}, {(key >> 8) & 255}, {key & 255}]"


class FolderDataset(SegmentationDataset):
    """A split of a folder dataset; ``name`` is what the user calls it (``data.roots.<name>``, ``--dataset``)."""

    layout = LAYOUT
    root_markers = ((DATASET_FILE,),)

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 name: str = "folder") -> None:
        root = Path(root).expanduser()
        self.name = name  # type: ignore[misc]  # per instance: the user's name for this dataset
        if not root.is_dir():
            raise DatasetLayoutError(f"{name}: dataset root {root} does not exist or is not a folder")
        self.spec: FolderSpec = load_spec(root)
        self.classes = self.spec.classes.names  # type: ignore[misc]
        self.class_set = self.spec.classes
        names = tuple(self.spec.splits) if self.spec.splits else ("train", "val", "test")
        self.split_folders = {s: (s,) for s in names}  # type: ignore[misc]
        self.eval_height = self.spec.eval_height  # type: ignore[misc]
        self._table = self._lookup_table()
        super().__init__(root, split, transform)

    # -- files ----------------------------------------------------------------------------------------------
    def _files_under(self, folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
        """Files under ``folder`` (any depth) whose name ends in one of ``suffixes``, keyed by their path relative
        to ``folder`` without the suffix."""
        found: dict[str, Path] = {}
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            for suffix in suffixes:
                if rel.lower().endswith(suffix.lower()) and path.is_file():
                    key = rel[: len(rel) - len(suffix)]
                    if key in found:
                        raise DatasetLayoutError(f"{self.name}: {found[key]} and {path} have the same name; "
                                                 "an image needs exactly one file per name")
                    found[key] = path
                    break
        return found

    def _pair(self, images: dict[str, Path], labels: dict[str, Path], where: str) -> list[tuple[Path, Path]]:
        for have, lack, what, other in ((images, labels, "image", "label"), (labels, images, "label", "image")):
            missing = sorted(set(have) - set(lack))
            if missing:
                examples = ", ".join(str(have[k]) for k in missing[:3])
                suffix = self.spec.label_suffix if other == "label" else "|".join(self.spec.image_suffixes)
                raise DatasetLayoutError(
                    f"{self.name}: {len(missing)} {what} file(s) {where} have no {other} file (same name, "
                    f"ending {suffix}), e.g. {examples}")
        return [(images[k], labels[k]) for k in sorted(images)]

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        pairs: list[tuple[Path, Path]] = []
        for split in native_splits:
            if self.spec.splits:
                pairs += self._listed(split)
                continue
            image_dir = self.require_dir(self.spec.images, split)
            label_dir = self.require_dir(self.spec.labels, split)
            images = self._files_under(image_dir, self.spec.image_suffixes)
            labels = self._files_under(label_dir, (self.spec.label_suffix,))
            pairs += self._pair(images, labels, f"under {image_dir} and {label_dir}")
        return pairs

    def _listed(self, split: str) -> list[tuple[Path, Path]]:
        """The pairs a ``splits`` list file names (one image per line, relative to ``images/``, suffix optional)."""
        spec = self.spec
        listing = self.root / spec.splits[split]  # type: ignore[index]
        image_dir, label_dir = self.require_dir(spec.images), self.require_dir(spec.labels)
        images = self._files_under(image_dir, spec.image_suffixes)
        pairs = []
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            key = next((entry[: -len(s)] for s in spec.image_suffixes if entry.lower().endswith(s)), entry)
            if key not in images:
                raise DatasetLayoutError(f"{listing}:{number}: no image {image_dir / entry} "
                                         f"(ending {'|'.join(spec.image_suffixes)})")
            label = label_dir / (key + spec.label_suffix)
            if not label.is_file():
                raise DatasetLayoutError(f"{self.name}: image {images[key]} ({listing}:{number}) has no label file "
                                         f"{label}")
            pairs.append((images[key], label))
        return pairs

    # -- labels ---------------------------------------------------------------------------------------------
    def _lookup_table(self) -> np.ndarray | None:
        """65536-entry value -> class table for train_ids and ids (None for palette)."""
        spec = self.spec
        if spec.encoding == "palette":
            return None
        table = np.full(65536, IGNORE, dtype=np.uint8)
        if spec.encoding == "train_ids":
            table[: len(spec.classes)] = np.arange(len(spec.classes), dtype=np.uint8)
        else:
            for native, train in spec.id_to_train.items():
                table[native] = train
        return table

    def lookup(self) -> np.ndarray:  # type: ignore[override]
        if self._table is None:
            raise DatasetLayoutError(f"{self.name}: palette labels have no value table")
        return self._table

    def read_native_label(self, path: Path) -> np.ndarray:
        if self.spec.encoding == "palette":
            return read_label_rgb(path)
        native = read_label_indices(path)
        if native.ndim != 2:
            raise CorruptFileError(
                f"{self.name}: label {path} has colour channels but {self.spec.path} says label_encoding "
                f"{self.spec.encoding} (one value per pixel); use label_encoding: palette for colour labels")
        return native

    def inspect_label(self, path: Path) -> tuple[np.ndarray, list[str]]:
        """H×W uint8 class indices (255 = ignore) and the values or colours outside the encoding (as text)."""
        native = self.read_native_label(path)
        if self.spec.encoding == "palette":
            return self._decode_colours(native)
        native = np.asarray(native)
        if native.size and (int(native.min()) < 0 or int(native.max()) > 65535):
            raise CorruptFileError(f"{self.name}: label {path} holds values outside 0..65535")
        ids = self._table[native]  # type: ignore[index]
        bad: list[str] = []
        if self.spec.encoding == "train_ids":
            values = np.unique(native[ids == IGNORE])
            bad = [str(int(v)) for v in values if int(v) != self.spec.ignore_index]
        return ids, bad

    def _decode_colours(self, rgb: np.ndarray) -> tuple[np.ndarray, list[str]]:
        spec = self.spec
        colours = [*spec.classes.palette, *spec.ignore_colours]
        classes = np.array([*range(len(spec.classes)), *([IGNORE] * len(spec.ignore_colours))], dtype=np.uint8)
        keys = _keys(colours)
        order = np.argsort(keys)
        keys, classes = keys[order], classes[order]
        pixel = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        where = np.clip(np.searchsorted(keys, pixel), 0, len(keys) - 1)
        known = keys[where] == pixel
        ids = np.where(known, classes[where], IGNORE).astype(np.uint8)
        bad = [] if known.all() else [_show_colour(int(k)) for k in np.unique(pixel[~known])]
        return ids, bad

    def decode_label(self, path: Path) -> np.ndarray:
        ids, bad = self.inspect_label(path)
        if bad and self.check_label_values and not (self.spec.encoding == "palette"
                                                    and self.spec.unknown_colour == "ignore"):
            raise CorruptFileError(self.bad_values_message(path, bad))
        return ids

    def bad_values_message(self, path: Path, bad: Sequence[str]) -> str:
        what = "colours" if self.spec.encoding == "palette" else "values"
        shown = ", ".join(bad[:SHOWN]) + (", ..." if len(bad) > SHOWN else "")
        hint = "; or set unknown_colour: ignore" if self.spec.encoding == "palette" else ""
        return (f"{self.name}: label {path} holds {what} outside the encoding of {self.spec.path} "
                f"({self.spec.describe_encoding()}): {shown}{hint}")

    def verify_labels(self) -> None:
        """Read every label once and raise :class:`CorruptFileError` at the first holding values or colours outside
        the encoding (before training writes anything); unreadable files are left to ``data.on_bad_sample``."""
        if self.spec.encoding == "ids" or (self.spec.encoding == "palette" and self.spec.unknown_colour == "ignore"):
            return
        for _, label in self.files:
            try:
                _, bad = self.inspect_label(label)
            except CorruptFileError:
                continue
            if bad:
                raise CorruptFileError(self.bad_values_message(label, bad))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "root": str(self.root), "classes": list(self.classes),
                "encoding": self.spec.encoding}

    @staticmethod
    def present_splits(root: str | Path) -> list[str]:
        """The splits a folder dataset has on disk (its list files, or the ``images/<split>`` folders present)."""
        spec = load_spec(root)
        if spec.splits:
            return list(spec.splits)
        return [s for s in ("train", "val", "test") if (spec.root / spec.images / s).is_dir()]
