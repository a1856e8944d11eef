"""SYNTHIA RAND-CITYSCAPES (synthetic source): 16-bit 3-channel label PNGs.

The class id is the first channel in RGB order (OpenCV, which reads BGR, has it last). SYNTHIA has no official
train/val split. If ``ROOT/train.txt`` / ``ROOT/val.txt`` exist (one file stem per line) they define it;
otherwise the first 6,580 of the 9,400 frames in sorted order (70 %) are ``train`` and the rest ``val``, the
sizes of the released split. SYNTHIA has no terrain, truck or train pixels: scores on it cover 16 classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pinmem.data.base import SegmentationDataset, pair_by_stem
from pinmem.data.io import read_unchanged
from pinmem.data.labels import SYNTHIA_ID_TO_TRAINID
from pinmem.errors import CorruptFileError

TRAIN_FRACTION = 6580 / 9400


class SynthiaDataset(SegmentationDataset):
    name = "synthia"
    layout = (
        "  ROOT/RGB/NNNNNNN.png, ROOT/GT/LABELS/NNNNNNN.png (16-bit, class id in the first RGB channel)\n"
        "  optional ROOT/train.txt and ROOT/val.txt listing file stems (else a sorted 70/30 split)"
    )
    split_folders = {"train": ("train",), "val": ("val",)}
    id_to_train = SYNTHIA_ID_TO_TRAINID
    known_ids = frozenset(range(23))
    root_markers = (("RGB", "GT/LABELS"),)

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        image_dir, label_dir = self.require_dir("RGB"), self.require_dir("GT", "LABELS")
        images = {p.stem: p for p in image_dir.glob("*.png")}
        labels = {p.stem: p for p in label_dir.glob("*.png")}
        keys = sorted(images)
        wanted: set[str] = set()
        for split in native_splits:
            listing = self.root / f"{split}.txt"
            if listing.is_file():
                wanted |= {line.strip() for line in listing.read_text().splitlines() if line.strip()}
            else:
                cut = round(len(keys) * TRAIN_FRACTION)
                wanted |= set(keys[:cut] if split == "train" else keys[cut:])
        images = {k: p for k, p in images.items() if k in wanted}
        return pair_by_stem(images, labels, self.name, image_dir)

    def read_native_label(self, path: Path) -> np.ndarray:
        raw = read_unchanged(path)
        if raw.ndim == 3 and raw.shape[2] >= 3:
            return raw[:, :, 2]  # BGR as decoded by OpenCV: the first RGB channel is the last here
        if raw.ndim == 2:
            return raw
        raise CorruptFileError(f"synthia: label {path} has shape {raw.shape}; expected a 3-channel 16-bit PNG")
