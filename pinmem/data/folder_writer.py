"""Write a folder dataset (docs/own-data.md): ``images/<split>/NNNNNN.png``, ``labels/<split>/NNNNNN.png`` and a
``dataset.yaml``, from RGB images and Cityscapes trainIds.

Two class sets: ``cityscapes`` (the 19 trainIds as 8-bit ``train_ids`` labels, ``classes: cityscapes``) and
``categories`` (the seven Cityscapes categories flat … vehicle as RGB labels in ``palette`` encoding), so that
``pinmem synth --format folder`` writes the example users copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from pinmem.data.classes import CATEGORIES, train_ids_to_categories
from pinmem.data.io import write_png
from pinmem.data.labels import IGNORE
from pinmem.data.spec import DATASET_FILE
from pinmem.errors import PinmemError

FOLDER_CLASS_SETS = ("cityscapes", "categories")


class FolderWriter:
    """Writes pairs under ``root`` in the folder layout; :meth:`finish` writes ``dataset.yaml``."""

    dataset = "folder"

    def __init__(self, root: str | Path, classes: str = "cityscapes") -> None:
        if classes not in FOLDER_CLASS_SETS:
            raise PinmemError(f"folder writer: classes must be one of {', '.join(FOLDER_CLASS_SETS)}, not {classes!r}")
        self.root = Path(root)
        self.classes = classes
        self.count = 0

    def write(self, split: str, image: np.ndarray, train_ids: np.ndarray) -> tuple[Path, Path]:
        """Write one pair (``image`` H×W×3 RGB uint8, ``train_ids`` H×W Cityscapes trainIds, 255 = ignore)."""
        if image.shape[:2] != train_ids.shape:
            raise PinmemError(f"folder writer: image {image.shape} and label {train_ids.shape} differ")
        self.count += 1
        name = f"{self.count:06d}.png"
        image_path = self.root / "images" / split / name
        label_path = self.root / "labels" / split / name
        write_png(image_path, np.ascontiguousarray(image[:, :, ::-1]))
        if self.classes == "categories":
            categories = train_ids_to_categories(train_ids)
            colours = CATEGORIES.colorize(categories)  # ignore -> black, listed in ignore_colours
            write_png(label_path, np.ascontiguousarray(colours[:, :, ::-1]))
        else:
            write_png(label_path, np.ascontiguousarray(train_ids.astype(np.uint8)))
        return image_path, label_path

    def spec(self) -> dict:
        """The ``dataset.yaml`` content."""
        if self.classes == "categories":
            return {"classes": list(CATEGORIES.names), "label_encoding": "palette",
                    "palette": [list(c) for c in CATEGORIES.palette], "ignore_colours": [[0, 0, 0]]}
        return {"classes": "cityscapes", "label_encoding": "train_ids", "ignore_index": IGNORE}

    def finish(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / DATASET_FILE).write_text(yaml.safe_dump(self.spec(), sort_keys=False, default_flow_style=None),
                                              encoding="utf-8")
