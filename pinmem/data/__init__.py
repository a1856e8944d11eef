"""Datasets, label tables, transforms and multi-domain sampling.

``build_dataset(name, root, split)`` is the entry point; ``split`` is ``train``, ``val``, ``test`` where the
dataset has it (mapped onto the native folder names) or ``all``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pinmem.data.base import SegmentationDataset, Transform
from pinmem.data.bdd100k import BDD100KDataset
from pinmem.data.cityscapes import CityscapesDataset
from pinmem.data.classes import CITYSCAPES, ClassSet
from pinmem.data.folder import FolderDataset
from pinmem.data.gtav import GTAVDataset
from pinmem.data.idd import IDDDataset
from pinmem.data.mapillary import MapillaryDataset
from pinmem.data.spec import is_folder_dataset, load_spec
from pinmem.data.synthia import SynthiaDataset
from pinmem.errors import DatasetLayoutError

DATASETS: dict[str, type[SegmentationDataset]] = {
    cls.name: cls
    for cls in (GTAVDataset, SynthiaDataset, CityscapesDataset, BDD100KDataset, MapillaryDataset, IDDDataset)
}


def build_dataset(
    name: str, root: str | Path, split: str = "train", transform: Transform | None = None
) -> SegmentationDataset:
    """The dataset ``name`` (one of :data:`DATASETS`, or any name for a folder whose ``root`` holds a
    ``dataset.yaml``: :class:`~pinmem.data.folder.FolderDataset`) at ``root``; the protocol's evaluation transform
    by default."""
    if is_folder_dataset(root):
        return FolderDataset(root, split=split, transform=transform, name=name)
    key = name.lower()
    if key not in DATASETS:
        raise DatasetLayoutError(f"unknown dataset {name!r}: {Path(root) / 'dataset.yaml'} not found, and it is "
                                 f"not a built-in dataset ({', '.join(DATASETS)}); see docs/own-data.md")
    return DATASETS[key](root, split=split, transform=transform)


def dataset_classes(name: str, root: str | Path) -> ClassSet:
    """The class set of dataset ``name`` at ``root``: its ``dataset.yaml``'s, else the 19 Cityscapes classes."""
    return load_spec(root).classes if is_folder_dataset(root) else CITYSCAPES


def build_training_dataset(
    name: str, root: str | Path, split: str = "train", transform: Transform | None = None
) -> SegmentationDataset:
    """Like :func:`build_dataset`, with the pairs whose image and label sizes differ (GTAV has some) removed.

    The number removed is logged; `pinmem data check` lists them by name. A label holding values outside the
    dataset's table is a :class:`~pinmem.errors.CorruptFileError` when read (not silently ignore), like an
    unreadable file: the trainer stops or skips it (``data.on_bad_sample``).
    """
    dataset = build_dataset(name, root, split, transform)
    dataset.check_label_values = True
    if isinstance(dataset, FolderDataset):  # values outside the encoding: a clear error before anything is written
        dataset.verify_labels()
    bad = dataset.find_size_mismatches()
    if bad:
        logging.getLogger(__name__).warning(
            "%s/%s: skipping %d of %d pairs whose image and label sizes differ or cannot be read "
            "(`pinmem data check --dataset %s --root %s` lists them)", name, split, len(bad), len(dataset), name, root
        )
        dataset.drop(bad)
    if not len(dataset):
        raise DatasetLayoutError(f"{name}: no usable image/label pairs left in split {split!r} under {root}")
    return dataset


__all__ = ["DATASETS", "ClassSet", "FolderDataset", "SegmentationDataset", "Transform", "build_dataset",
           "build_training_dataset", "dataset_classes", "is_folder_dataset"]
