"""The dataset base class every loader derives from.

A loader only says where its files are (:meth:`SegmentationDataset.list_files`) and how its label files decode
to trainIds (:meth:`SegmentationDataset.decode_label`); reading, error messages, the transform hook and the
size check are shared here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from pinmem.data.classes import CITYSCAPES, ClassSet
from pinmem.data.io import read_image, read_label_indices
from pinmem.data.labels import CLASSES, lookup_table
from pinmem.data.roots import root_hint
from pinmem.errors import CorruptFileError, DatasetLayoutError

#: ``transform(image_rgb_uint8_HxWx3, label_uint8_HxW, seed) -> (image_float_3xHxW, label_int64_HxW)``
Transform = Callable[[np.ndarray, np.ndarray, "int | None"], "tuple[torch.Tensor, torch.Tensor]"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def no_transform(image: np.ndarray, label: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The identity transform: ``ds.get(i)`` then returns the decoded arrays (picklable, unlike a lambda)."""
    return image, label


#: the manifest a generated world (``pinmem synth``) writes at each dataset root
GENERATED_WORLD_MANIFEST = "synth.json"


def generated_world_protocol(root: Path) -> dict | None:
    """The ``evaluation`` entry of ``root/synth.json`` (``height``, ``center_crop``), or None for real data."""
    path = Path(root) / GENERATED_WORLD_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetLayoutError(f"{path} is not a readable synth.json manifest: {err}") from err
    protocol = manifest.get("evaluation") if isinstance(manifest, dict) else None
    return protocol if isinstance(protocol, dict) else None


class SegmentationDataset(torch.utils.data.Dataset, ABC):
    """A split of one segmentation dataset as sorted ``(image_path, label_path)`` pairs.

    Subclasses set :attr:`name`, :attr:`layout` (shown in errors), :attr:`split_folders` (project split name ->
    native folder names), :attr:`id_to_train` and :attr:`known_ids`, and implement :meth:`list_files` (and
    :meth:`read_native_label` where the label file is not a plain single-channel PNG).
    ``split="all"`` joins every native split.
    """

    name: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: evaluation-size handling (docs/method.md §7): resize to this height (keeping aspect), then centre-crop a square.
    eval_height: ClassVar[int | None] = None
    eval_center_crop: ClassVar[int | None] = None
    #: native id -> trainId (docs/method.md §7); ids not listed decode to 255.
    id_to_train: ClassVar[dict[int, int]] = {}
    #: every native value a valid label file may hold (mapped or deliberately ignored); `data check` reports others.
    known_ids: ClassVar[frozenset[int]] = frozenset()
    #: what marks the dataset's root: alternatives, each a tuple of relative paths that all exist (for the "did you
    #: mean" of a root one level too high or too low, :mod:`pinmem.data.roots`)
    root_markers: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: class names in label order and their colours (a folder dataset has its own, from its dataset.yaml)
    classes: ClassVar[tuple[str, ...]] = CLASSES
    class_set: ClassVar[ClassSet] = CITYSCAPES

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"{self.name}: dataset root {self.root} does not exist or is not a folder; expected layout:\n"
                f"{self.layout}"
            )
        valid = (*self.split_folders, "all")
        if split not in valid:
            raise DatasetLayoutError(f"{self.name}: unknown split {split!r}; choose one of {', '.join(valid)}")
        self.split = split
        try:
            self.files: list[tuple[Path, Path]] = self._find_files(split)
        except DatasetLayoutError as err:  # a root one level too high or too low gets a "did you mean"
            hint = root_hint(self.name, self.root, self.root_markers)
            if hint is None:
                raise
            raise DatasetLayoutError(f"{self.name}: {hint}\n{err}") from err
        self.transform = self.evaluation_transform() if transform is None else transform
        #: refuse label files holding values outside :attr:`known_ids` (:class:`CorruptFileError`) instead of
        #: reading them as ignore; training sets turn it on (:func:`pinmem.data.build_training_dataset`)
        self.check_label_values = False

    def evaluation_transform(self) -> Transform:
        """The protocol's evaluation transform (docs/method.md §7 sizes). A generated world carries its own protocol in
        the ``evaluation`` entry of its ``synth.json`` (the street world is scored at its native size: the real
        Mapillary resize to height 1536 is meant for photos, not renders), so that ``pinmem eval``, the demo
        and the benchmark score a checkpoint the same way."""
        from pinmem.data.transforms import EvalTransform

        height, center_crop = self.eval_height, self.eval_center_crop
        protocol = generated_world_protocol(self.root)
        if protocol is not None:
            height, center_crop = protocol.get("height"), protocol.get("center_crop")
        return EvalTransform(height=height, center_crop=center_crop)

    def _find_files(self, split: str) -> list[tuple[Path, Path]]:
        """The sorted pairs of ``split``; ``all`` joins every native split present (a missing one, often
        ``test``, is skipped)."""
        if split == "all":
            found: list[tuple[Path, Path]] = []
            errors: list[DatasetLayoutError] = []
            for folders in self.split_folders.values():
                try:
                    found += self.list_files(folders)
                except DatasetLayoutError as err:
                    errors.append(err)
            if not found and errors:
                raise errors[0]
        else:
            found = self.list_files(self.split_folders[split])
        if not found:
            raise DatasetLayoutError(
                f"{self.name}: no image/label pairs found for split {split!r} under {self.root}; expected layout:\n"
                f"{self.layout}"
            )
        return sorted(set(found))

    # -- what a loader implements -------------------------------------------------------------------------
    @abstractmethod
    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        """All ``(image, label)`` pairs of the given native split folders."""

    def read_native_label(self, path: Path) -> np.ndarray:
        """Read the label file at ``path`` as H×W native ids (before mapping to trainIds)."""
        return read_label_indices(path)

    # -- shared behaviour ---------------------------------------------------------------------------------
    @classmethod
    def lookup(cls) -> np.ndarray:
        """65536-entry native id -> trainId table (255 for ids the dataset's table does not map)."""
        if "_lut" not in cls.__dict__:
            cls._lut = lookup_table(cls.id_to_train, size=65536)
        return cls._lut

    def decode_label(self, path: Path) -> np.ndarray:
        """Read the label file at ``path`` and return H×W ``uint8`` trainIds (255 = ignore)."""
        native = self.read_native_label(path)
        if native.ndim != 2:
            raise CorruptFileError(f"{self.name}: label {path} has shape {native.shape}, expected one channel")
        if self.check_label_values and self.known_ids:
            self.require_known_values(native, path)
        native = np.clip(native, 0, 65535)  # out-of-range values become ignore through the table
        return self.lookup()[native]

    @classmethod
    def known_table(cls) -> np.ndarray:
        """65536-entry table: True for the native ids in :attr:`known_ids`."""
        if "_known" not in cls.__dict__:
            table = np.zeros(65536, dtype=bool)
            table[[i for i in cls.known_ids if 0 <= i < 65536]] = True
            cls._known = table
        return cls._known

    def require_known_values(self, native: np.ndarray, path: Path) -> None:
        """A :class:`CorruptFileError` naming ``path`` and the values if ``native`` holds ids the dataset does not
        define (one table look-up per pixel; ``pinmem data check`` lists the same files)."""
        in_range = native.size == 0 or (int(native.min()) >= 0 and int(native.max()) < 65536)
        bad = ~self.known_table()[native] if in_range else None
        if in_range and not bad.any():
            return
        values = np.unique(native[bad] if bad is not None else native[(native < 0) | (native >= 65536)])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        raise CorruptFileError(f"{self.name}: label {path} holds values the {self.name} label table does not "
                               f"define ({shown})")

    def require_dir(self, *parts: str) -> Path:
        """``root/parts`` if it is a folder, else a :class:`DatasetLayoutError` naming it and the layout."""
        path = self.root.joinpath(*parts)
        if not path.is_dir():
            raise DatasetLayoutError(
                f"{self.name}: expected folder {path} is missing; expected layout:\n{self.layout}"
            )
        return path

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> np.ndarray:
        """The ``index``-th image as H×W×3 RGB ``uint8``."""
        return read_image(self.files[index][0])

    def load_label(self, index: int) -> np.ndarray:
        """The ``index``-th label as H×W ``uint8`` trainIds, 255 = ignore."""
        label = self.decode_label(self.files[index][1])
        if label.ndim != 2 or label.dtype != np.uint8:
            raise CorruptFileError(f"{self.files[index][1]}: decoded to {label.shape} {label.dtype}, not H×W uint8")
        return label

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and label, checked to have the same size."""
        image, label = self.load_image(index), self.load_label(index)
        if image.shape[:2] != label.shape:
            img_path, lbl_path = self.files[index]
            raise CorruptFileError(
                f"{self.name}: image {img_path} is {image.shape[1]}×{image.shape[0]} but label {lbl_path} is "
                f"{label.shape[1]}×{label.shape[0]}"
            )
        return image, label

    def get(self, index: int, seed: int | None = None) -> dict[str, Any]:
        """Load pair ``index`` and apply the transform with ``seed``; returns image, label, index, domain."""
        image, label = self.load_pair(index)
        image_t, label_t = self.transform(image, label, seed)
        return {"image": image_t, "label": label_t, "index": index, "domain": self.name}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index)

    def find_size_mismatches(self) -> list[int]:
        """Indices whose image and label sizes differ, read from the file headers only (fast). A file whose header
        cannot be read is not listed: training meets it and follows ``data.on_bad_sample`` (stop or skip)."""
        bad = []
        for i, (img, lbl) in enumerate(self.files):
            try:
                with Image.open(img) as a, Image.open(lbl) as b:
                    if a.size != b.size:
                        bad.append(i)
            except Exception:  # reported by `data check`, and by training when it reads the pair
                continue
        return bad

    def drop(self, indices: Sequence[int]) -> None:
        """Remove the given pairs (e.g. size mismatches before training)."""
        gone = set(indices)
        self.files = [f for i, f in enumerate(self.files) if i not in gone]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def files_by_key(folder: Path, pattern: str, suffix: str) -> dict[str, Path]:
    """Files under ``folder`` (recursively) matching ``pattern``, keyed by their path relative to ``folder`` with
    ``suffix`` removed, so that an image and its label share a key."""
    found: dict[str, Path] = {}
    for path in folder.rglob(pattern):
        rel = path.relative_to(folder).as_posix()
        if rel.endswith(suffix):
            found[rel[: len(rel) - len(suffix)]] = path
    return found


def pair_by_stem(
    images: dict[str, Path], labels: dict[str, Path], dataset: str, folder: Path
) -> list[tuple[Path, Path]]:
    """Pair images with labels that share a key; an image without a label is an error naming it."""
    missing = sorted(set(images) - set(labels))
    if missing:
        examples = ", ".join(str(images[k]) for k in missing[:3])
        raise DatasetLayoutError(
            f"{dataset}: {len(missing)} image(s) under {folder} have no label file, e.g. {examples}"
        )
    return [(images[k], labels[k]) for k in images]
