"""Cityscapes (target domain): ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine_labelIds``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pinmem.data.base import SegmentationDataset, files_by_key, pair_by_stem
from pinmem.data.labels import CITYSCAPES_ID_TO_TRAINID


class CityscapesDataset(SegmentationDataset):
    name = "cityscapes"
    layout = (
        "  ROOT/leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png\n"
        "  ROOT/gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png"
    )
    split_folders = {"train": ("train",), "val": ("val",), "test": ("test",)}
    id_to_train = CITYSCAPES_ID_TO_TRAINID
    known_ids = frozenset(range(34))
    root_markers = (("leftImg8bit", "gtFine"),)
    image_suffix = "_leftImg8bit.png"
    label_suffix = "_gtFine_labelIds.png"

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        pairs: list[tuple[Path, Path]] = []
        for split in native_splits:
            image_dir = self.require_dir("leftImg8bit", split)
            label_dir = self.require_dir("gtFine", split)
            images = files_by_key(image_dir, "*" + self.image_suffix, self.image_suffix)
            labels = files_by_key(label_dir, "*" + self.label_suffix, self.label_suffix)
            pairs += pair_by_stem(images, labels, self.name, image_dir)
        return pairs
