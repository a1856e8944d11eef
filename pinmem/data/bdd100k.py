"""BDD100K 10k semantic segmentation (target domain); labels already hold trainIds.

Two releases are recognised: the newer one (``images/10k/<split>/*.jpg`` with
``labels/sem_seg/masks/<split>/*.png``) and the older ``bdd100k_seg`` one (``seg/images/<split>/*.jpg`` or
``images/10k/<split>`` with ``seg/labels/<split>/*_train_id.png``). The masks are read as stored (H×W); they
are never transposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pinmem.data.base import IMAGE_SUFFIXES, SegmentationDataset, pair_by_stem
from pinmem.data.labels import IDENTITY_TO_TRAINID, IGNORE
from pinmem.errors import DatasetLayoutError


class BDD100KDataset(SegmentationDataset):
    name = "bdd100k"
    layout = (
        "  newer release: ROOT/images/10k/{train,val}/*.jpg and ROOT/labels/sem_seg/masks/{train,val}/*.png\n"
        "  older release: ROOT/seg/images/{train,val}/*.jpg (or ROOT/images/10k/...) and\n"
        "                 ROOT/seg/labels/{train,val}/*_train_id.png"
    )
    split_folders = {"train": ("train",), "val": ("val",)}
    id_to_train = IDENTITY_TO_TRAINID
    known_ids = frozenset([*range(19), IGNORE])
    root_markers = (("images/10k", "labels/sem_seg"), ("seg/images", "seg/labels"), ("images/10k", "seg/labels"))

    def _images(self, split: str) -> Path:
        for parts in (("images", "10k", split), ("seg", "images", split)):
            if self.root.joinpath(*parts).is_dir():
                return self.root.joinpath(*parts)
        return self.require_dir("images", "10k", split)

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        pairs: list[tuple[Path, Path]] = []
        for split in native_splits:
            image_dir = self._images(split)
            images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            newer = self.root / "labels" / "sem_seg" / "masks" / split
            older = self.root / "seg" / "labels" / split
            if newer.is_dir():
                labels = {p.stem: p for p in newer.glob("*.png")}
            elif older.is_dir():
                labels = {p.name[: -len("_train_id.png")]: p for p in older.glob("*_train_id.png")}
            else:
                raise DatasetLayoutError(
                    f"bdd100k: no label folder for split {split!r}: looked for {newer} and {older}; "
                    f"expected layout:\n{self.layout}"
                )
            pairs += pair_by_stem(images, labels, self.name, image_dir)
        return pairs
