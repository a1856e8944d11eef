"""Write an RGB image and its trainId map into each dataset's native on-disk format.

The writers let every loader be tested on real files and let the procedural street world (`pinmem synth`) pass
itself off as any of the six datasets. Each writer names its files after the dataset's convention, encodes the
trainIds back to native ids (ignore -> a native id that maps to ignore) and writes the side files the loader
needs (GTAV ``split.mat``, Mapillary ``config.json``, SYNTHIA split lists) in :meth:`FormatWriter.finish`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
from PIL import Image

from pinmem.data.io import write_png
from pinmem.data.labels import (
    CITYSCAPES_ID_TO_TRAINID,
    CITYSCAPES_LABELS,
    IDENTITY_TO_TRAINID,
    IGNORE,
    MAPILLARY_V12_ID_TO_TRAINID,
    MAPILLARY_V12_NAMES,
    SYNTHIA_ID_TO_TRAINID,
    inverse_table,
)
from pinmem.errors import PinmemError


def encode_train_ids(train_ids: np.ndarray, table: dict[int, int], ignore_id: int, dtype=np.uint8) -> np.ndarray:
    """trainIds -> native ids through the inverse of ``table``; 255 and unknown ids -> ``ignore_id``."""
    lut = np.full(256, ignore_id, dtype=np.int64)
    for train, native in inverse_table(table).items():
        lut[train] = native
    return lut[train_ids].astype(dtype)


#: the 116-byte text at the start of a MAT file; scipy writes the creation time there, pinmem a fixed text so that
#: the same world is the same bytes
MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by pinmem".ljust(116, b" ")


def mat_file_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A MATLAB 5 file holding ``arrays`` (scipy's ``savemat``) whose header carries no creation time."""
    import io

    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, arrays)
    return MAT_DESCRIPTION + buffer.getvalue()[len(MAT_DESCRIPTION):]


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise PinmemError(f"cannot encode JPEG for {path}")
    buf.tofile(str(path))


class FormatWriter(ABC):
    """Writes pairs under ``root`` in one dataset's layout. Call :meth:`finish` once all pairs are written."""

    dataset: ClassVar[str]
    table: ClassVar[dict[int, int]]
    ignore_id: ClassVar[int]
    #: project split name -> native folder name
    native_split: ClassVar[dict[str, str]] = {"train": "train", "val": "val", "test": "test"}

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.count = 0
        self.written: dict[str, list[str]] = {}

    def encode_label(self, train_ids: np.ndarray) -> np.ndarray:
        return encode_train_ids(train_ids, self.table, self.ignore_id)

    def write(self, split: str, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        """Write one pair into ``split`` (``train``/``val``/``test``); returns the image and label paths."""
        if image.shape[:2] != train_ids.shape:
            raise PinmemError(f"{self.dataset} writer: image {image.shape} and label {train_ids.shape} differ")
        if split not in self.native_split:
            raise PinmemError(f"{self.dataset} writer: unknown split {split!r}")
        self.count += 1
        paths = self.write_pair(self.native_split[split], self.count, image, train_ids)
        self.written.setdefault(split, []).append(paths[0].stem)
        return paths

    @abstractmethod
    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        """Write pair number ``number`` (1-based) into the native split folder ``split``."""

    def finish(self) -> None:
        """Write the side files the dataset needs; the base only makes sure the root exists."""
        self.root.mkdir(parents=True, exist_ok=True)


class GTAVWriter(FormatWriter):
    """Palette PNG labels (index = Cityscapes labelId, palette = Cityscapes colours).

    ``layout="flat"`` writes the original release (``images/``, ``labels/``, ``split.mat``); ``"repacked"``
    writes RobustNet's ``images/{train,valid,test}/`` folders.
    """

    dataset = "gtav"
    table = CITYSCAPES_ID_TO_TRAINID
    ignore_id = 0
    native_split = {"train": "train", "val": "valid", "test": "test"}

    def __init__(self, root: str | Path, layout: str = "flat") -> None:
        super().__init__(root)
        if layout not in ("flat", "repacked"):
            raise PinmemError(f"gtav writer: layout must be 'flat' or 'repacked', not {layout!r}")
        self.layout = layout
        self.frames: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
        palette = np.zeros((256, 3), dtype=np.uint8)
        for lab in CITYSCAPES_LABELS:
            if lab.id >= 0:
                palette[lab.id] = lab.color
        self.palette = palette.ravel().tolist()

    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        sub = () if self.layout == "flat" else (split,)
        image_path = self.root.joinpath("images", *sub, f"{number:05d}.png")
        label_path = self.root.joinpath("labels", *sub, f"{number:05d}.png")
        write_png(image_path, image[:, :, ::-1])
        label = Image.fromarray(self.encode_label(train_ids), mode="P")
        label.putpalette(self.palette)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label.save(label_path)
        self.frames[split].append(number)
        return image_path, label_path

    def finish(self) -> None:
        super().finish()
        if self.layout == "flat":
            arrays = {key: np.array(self.frames[s], dtype=np.float64).reshape(-1, 1)
                      for s, key in (("train", "trainIds"), ("valid", "valIds"), ("test", "testIds"))}
            (self.root / "split.mat").write_bytes(mat_file_bytes(arrays))


class SynthiaWriter(FormatWriter):
    """16-bit 3-channel labels, class id in the first RGB channel; split lists in ``train.txt``/``val.txt``."""

    dataset = "synthia"
    table = SYNTHIA_ID_TO_TRAINID
    ignore_id = 0

    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        image_path = self.root / "RGB" / f"{number:07d}.png"
        label_path = self.root / "GT" / "LABELS" / f"{number:07d}.png"
        write_png(image_path, image[:, :, ::-1])
        label = np.zeros((*train_ids.shape, 3), dtype=np.uint16)
        label[:, :, 2] = self.encode_label(train_ids)  # OpenCV writes BGR: index 2 is the first RGB channel
        write_png(label_path, label)
        return image_path, label_path

    def finish(self) -> None:
        super().finish()
        for split, stems in self.written.items():
            (self.root / f"{split}.txt").write_text("".join(s + "\n" for s in stems))


class CityscapesWriter(FormatWriter):
    """``leftImg8bit`` PNG images and ``gtFine_labelIds`` labels in one city folder per split."""

    dataset = "cityscapes"
    table = CITYSCAPES_ID_TO_TRAINID
    ignore_id = 0
    label_suffix = "_gtFine_labelIds.png"

    def __init__(self, root: str | Path, city: str = "synthcity") -> None:
        super().__init__(root)
        self.city = city

    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        stem = f"{self.city}_{number:06d}_000019"
        image_path = self.root / "leftImg8bit" / split / self.city / f"{stem}_leftImg8bit.png"
        label_path = self.root / "gtFine" / split / self.city / f"{stem}{self.label_suffix}"
        write_png(image_path, image[:, :, ::-1])
        write_png(label_path, self.encode_label(train_ids))
        return image_path, label_path


class IDDWriter(CityscapesWriter):
    """IDD with ``gtFine_labelcsTrainIds`` labels (already trainIds, 255 ignore)."""

    dataset = "idd"
    table = IDENTITY_TO_TRAINID
    ignore_id = IGNORE
    label_suffix = "_gtFine_labelcsTrainIds.png"

    def __init__(self, root: str | Path, city: str = "0") -> None:
        super().__init__(root, city=city)


class BDD100KWriter(FormatWriter):
    """JPEG images; trainId PNG masks in the newer (``labels/sem_seg/masks``) or older (``seg/``) release."""

    dataset = "bdd100k"
    table = IDENTITY_TO_TRAINID
    ignore_id = IGNORE

    def __init__(self, root: str | Path, release: str = "new", jpeg_quality: int = 90) -> None:
        super().__init__(root)
        if release not in ("new", "old"):
            raise PinmemError(f"bdd100k writer: release must be 'new' or 'old', not {release!r}")
        self.release, self.jpeg_quality = release, jpeg_quality

    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        stem = f"{number:08x}-{number * 2654435761 % 2**32:08x}"
        if self.release == "new":
            image_path = self.root / "images" / "10k" / split / f"{stem}.jpg"
            label_path = self.root / "labels" / "sem_seg" / "masks" / split / f"{stem}.png"
        else:
            image_path = self.root / "seg" / "images" / split / f"{stem}.jpg"
            label_path = self.root / "seg" / "labels" / split / f"{stem}_train_id.png"
        write_jpeg(image_path, image, self.jpeg_quality)
        write_png(label_path, self.encode_label(train_ids))
        return image_path, label_path


class MapillaryWriter(FormatWriter):
    """Vistas v1.2: JPEG images, uint8 id labels and the 66-label ``config.json``."""

    dataset = "mapillary"
    table = MAPILLARY_V12_ID_TO_TRAINID
    ignore_id = 65  # void--unlabeled
    native_split = {"train": "training", "val": "validation", "test": "testing"}

    def __init__(self, root: str | Path, jpeg_quality: int = 90) -> None:
        super().__init__(root)
        self.jpeg_quality = jpeg_quality

    def write_pair(self, split: str, number: int, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        stem = f"synth{number:017d}"
        image_path = self.root / split / "images" / f"{stem}.jpg"
        label_path = self.root / split / "labels" / f"{stem}.png"
        write_jpeg(image_path, image, self.jpeg_quality)
        write_png(label_path, self.encode_label(train_ids))
        return image_path, label_path

    def finish(self) -> None:
        rng = np.random.default_rng(0)
        labels = [
            {"name": name, "readable": name.split("--")[-1].replace("-", " ").title(),
             "color": [int(c) for c in rng.integers(0, 256, 3)], "instances": False, "evaluate": True}
            for name in MAPILLARY_V12_NAMES
        ]
        super().finish()
        (self.root / "config.json").write_text(json.dumps({"labels": labels, "version": "1.2"}, indent=1))


WRITERS: dict[str, type[FormatWriter]] = {
    cls.dataset: cls
    for cls in (GTAVWriter, SynthiaWriter, CityscapesWriter, BDD100KWriter, MapillaryWriter, IDDWriter)
}


def build_writer(dataset: str, root: str | Path, **options) -> FormatWriter:
    """The writer for ``dataset``'s native format under ``root``."""
    if dataset not in WRITERS:
        raise PinmemError(f"no writer for dataset {dataset!r}; choose one of {', '.join(WRITERS)}")
    return WRITERS[dataset](root, **options)
