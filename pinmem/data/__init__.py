"""Datasets, label tables, transforms and multi-domain sampling.

``build_dataset(name, root, split)`` is the entry point; ``split`` is ``train``, ``val``, ``test`` where the
dataset has it (mapped onto the native folder names) or ``all``.
"""

from __future__ import annotations

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


__all__ = ["DATASETS", "SegmentationDataset", "Transform", "build_dataset"]
