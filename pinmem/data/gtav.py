"""GTAV (synthetic source): palette label PNGs whose index is the Cityscapes labelId.

Two layouts are recognised:

* the flat release, ``images/NNNNN.png`` and ``labels/NNNNN.png`` with the official split in ``split.mat``
  (``trainIds`` / ``valIds`` / ``testIds``, 1-based frame numbers) or, without ``split.mat``, RobustNet's split
  lists ``gtav_split_{train,val,test}.txt`` (one file name per line; the train list holds 12,388 of the
  official 12,403 train frames) in the root or in ``ROOT/split_data/``;
* RobustNet's re-packing into ``images/{train,valid,test}/`` and ``labels/{train,valid,test}/``.

Label files saved as RGB colour images (some re-packings convert them) are decoded by colour instead. A few
GTAV frames have a label whose size differs from the image: `pinmem data check` reports them and training skips
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pinmem.data.base import SegmentationDataset, pair_by_stem
from pinmem.data.io import read_label_indices
from pinmem.data.labels import CITYSCAPES_ID_TO_TRAINID, CITYSCAPES_LABELS
from pinmem.errors import CorruptFileError, DatasetLayoutError

SPLIT_KEYS = {"train": "trainIds", "valid": "valIds", "test": "testIds"}
#: RobustNet's split lists (``split_data/`` of its repository), by native split
SPLIT_LISTS = {"train": "gtav_split_train.txt", "valid": "gtav_split_val.txt", "test": "gtav_split_test.txt"}


def _colour_code(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


#: RGB colour code -> labelId for colour-coded labels. Colours shared by several ids take the id that is a
#: train class (pole over polegroup, car over license plate) or else the smallest id.
_COLOUR_TO_ID: dict[int, int] = {}
for _lab in sorted(CITYSCAPES_LABELS, key=lambda lab: (lab.id not in CITYSCAPES_ID_TO_TRAINID, lab.id)):
    if _lab.id >= 0:
        _COLOUR_TO_ID.setdefault(int(_colour_code(np.array(_lab.color))), _lab.id)


def colours_to_label_ids(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 Cityscapes colours -> H×W labelIds; unknown colours become 0 (unlabeled)."""
    codes = _colour_code(rgb)
    keys = np.array(sorted(_COLOUR_TO_ID), dtype=np.int64)
    values = np.array([_COLOUR_TO_ID[k] for k in keys], dtype=np.uint8)
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    return np.where(keys[pos] == codes, values[pos], 0).astype(np.uint8)


def read_split_mat(path: Path) -> dict[str, list[int]]:
    """The official split file: ``{"train": [...], "valid": [...], "test": [...]}`` of frame numbers."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as err:
        raise CorruptFileError(f"gtav: cannot read split file {path}: {err}") from err
    missing = [k for k in SPLIT_KEYS.values() if k not in mat]
    if missing:
        raise CorruptFileError(f"gtav: split file {path} lacks the arrays {missing}")
    return {name: [int(v) for v in np.asarray(mat[key]).ravel()] for name, key in SPLIT_KEYS.items()}


def find_split_lists(root: Path) -> Path | None:
    """The folder holding RobustNet's ``gtav_split_*.txt`` lists: ``root`` or ``root/split_data``, else None."""
    for folder in (root, root / "split_data"):
        if any((folder / name).is_file() for name in SPLIT_LISTS.values()):
            return folder
    return None


def read_split_list(path: Path) -> set[str]:
    """The file stems a RobustNet split list names (``00001.png`` per line -> ``00001``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"gtav: cannot read split list {path}: {err}") from err
    return {Path(line.strip()).stem for line in lines if line.strip()}


class GTAVDataset(SegmentationDataset):
    name = "gtav"
    layout = (
        "  flat release:  ROOT/images/NNNNN.png, ROOT/labels/NNNNN.png, ROOT/split.mat\n"
        "                 (or RobustNet's ROOT/gtav_split_{train,val,test}.txt, also in ROOT/split_data/)\n"
        "  re-packed:     ROOT/images/{train,valid,test}/NNNNN.png, ROOT/labels/{train,valid,test}/NNNNN.png"
    )
    split_folders = {"train": ("train",), "val": ("valid",), "test": ("test",)}
    id_to_train = CITYSCAPES_ID_TO_TRAINID
    known_ids = frozenset(range(34))
    root_markers = (("images", "labels"),)

    @property
    def repacked(self) -> bool:
        return any((self.root / "images" / s).is_dir() for s in SPLIT_KEYS)

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        image_root, label_root = self.require_dir("images"), self.require_dir("labels")
        pairs: list[tuple[Path, Path]] = []
        if self.repacked:
            for split in native_splits:
                image_dir, label_dir = self.require_dir("images", split), self.require_dir("labels", split)
                images = {p.stem: p for p in image_dir.glob("*.png")}
                labels = {p.stem: p for p in label_dir.glob("*.png")}
                pairs += pair_by_stem(images, labels, self.name, image_dir)
            return pairs
        images = {p.stem: p for p in image_root.glob("*.png")}
        labels = {p.stem: p for p in label_root.glob("*.png")}
        split_file, lists = self.root / "split.mat", find_split_lists(self.root)
        if self.split != "all" and split_file.is_file():
            split = read_split_mat(split_file)
            wanted = {n for s in native_splits for n in split[s]}
            images = {k: p for k, p in images.items() if k.isdigit() and int(k) in wanted}
        elif self.split != "all" and lists is not None:
            stems: set[str] = set()
            for s in native_splits:
                if not (lists / SPLIT_LISTS[s]).is_file():
                    raise DatasetLayoutError(f"gtav: {lists / SPLIT_LISTS[s]} is missing; it lists the {s} split "
                                             f"(beside the other gtav_split_*.txt files in {lists})")
                stems |= read_split_list(lists / SPLIT_LISTS[s])
            images = {k: p for k, p in images.items() if k in stems}
        elif self.split != "all":
            raise DatasetLayoutError(
                f"gtav: flat layout without {split_file} or RobustNet's gtav_split_*.txt lists; they hold the "
                f"train/valid/test split (use split='all' to load every frame). Expected layout:\n{self.layout}"
            )
        return pair_by_stem(images, labels, self.name, image_root)

    def read_native_label(self, path: Path) -> np.ndarray:
        raw = read_label_indices(path)
        return colours_to_label_ids(raw) if raw.ndim == 3 else raw
