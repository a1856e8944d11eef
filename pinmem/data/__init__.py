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
from pinmem.data.gtav import GTAVDataset
from pinmem.data.idd import IDDDataset
from pinmem.data.mapillary import MapillaryDataset
from pinmem.data.synthia import SynthiaDataset
from pinmem.errors import DatasetLayoutError

DATASETS: dict[str, type[SegmentationDataset]] = {
    cls.name: cls
    for cls in (GTAVDataset, SynthiaDataset, CityscapesDataset, BDD100KDataset, MapillaryDataset, IDDDataset)
}


def build_dataset(
    name: str, root: str | Path, split: str = "train", transform: Transform | None = None
) -> SegmentationDataset:
    """The dataset ``name`` (one of :data:`DATASETS`) at ``root``; the protocol's evaluation transform by default."""
    key = name.lower()
    if key not in DATASETS:
        raise DatasetLayoutError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[key](root, split=split, transform=transform)


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


__all__ = ["DATASETS", "SegmentationDataset", "Transform", "build_dataset", "build_training_dataset"]
