"""Mapillary Vistas v1.2 (target domain), evaluated at height 1536 with a 1536×1536 centre crop.

Recognised layouts: the v1.2 release (``config.json`` with 66 labels, ``{training,validation}/labels``) and the
v2.0 download's v1.2 labels (``config_v1.2.json``, ``{training,validation}/v1.2/labels``). v2.0 labels use other
ids and are refused with a message saying so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pinmem.data.base import IMAGE_SUFFIXES, SegmentationDataset, pair_by_stem
from pinmem.data.labels import MAPILLARY_V12_ID_TO_TRAINID, MAPILLARY_V12_NAMES
from pinmem.errors import CorruptFileError, DatasetLayoutError


class MapillaryDataset(SegmentationDataset):
    name = "mapillary"
    layout = (
        "  ROOT/config.json (v1.2: 66 labels), ROOT/{training,validation}/images/*.jpg,\n"
        "  ROOT/{training,validation}/labels/*.png   (or, from the v2.0 download: ROOT/config_v1.2.json and\n"
        "  ROOT/{training,validation}/v1.2/labels/*.png)"
    )
    split_folders = {"train": ("training",), "val": ("validation",)}
    id_to_train = MAPILLARY_V12_ID_TO_TRAINID
    known_ids = frozenset(range(len(MAPILLARY_V12_NAMES)))
    root_markers = (("config.json",), ("config_v1.2.json",), ("config_v2.0.json",), ("training/images",),
                    ("validation/images",))
    eval_height = 1536
    eval_center_crop = 1536

    def _label_subdir(self) -> tuple[str, ...]:
        """Where the v1.2 labels sit, after checking the config file says v1.2."""
        for config_name, subdir in (("config.json", ("labels",)), ("config_v1.2.json", ("v1.2", "labels"))):
            config = self.root / config_name
            if config.is_file():
                try:
                    labels = json.loads(config.read_text())["labels"]
                except (ValueError, KeyError, TypeError) as err:
                    raise CorruptFileError(f"mapillary: {config} is not a Vistas config file ({err})") from err
                if len(labels) != len(MAPILLARY_V12_NAMES):
                    raise DatasetLayoutError(
                        f"mapillary: {config} lists {len(labels)} labels; this loader maps the 66 labels of "
                        "Vistas v1.2 (v2.0 has 124 labels with other ids). Point --root at a v1.2 release or "
                        "use the v1.2 labels shipped inside the v2.0 download (config_v1.2.json)."
                    )
                return subdir
        if (self.root / "config_v2.0.json").is_file():
            raise DatasetLayoutError(
                f"mapillary: {self.root} holds only Vistas v2.0 labels (config_v2.0.json); v2.0 ids differ "
                "from v1.2 and are not mapped. Use a v1.2 release."
            )
        raise DatasetLayoutError(
            f"mapillary: no config.json under {self.root}; expected layout:\n{self.layout}"
        )

    def list_files(self, native_splits: Sequence[str]) -> list[tuple[Path, Path]]:
        subdir = self._label_subdir()
        pairs: list[tuple[Path, Path]] = []
        for split in native_splits:
            image_dir = self.require_dir(split, "images")
            label_dir = self.require_dir(split, *subdir)
            images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            labels = {p.stem: p for p in label_dir.glob("*.png")}
            pairs += pair_by_stem(images, labels, self.name, image_dir)
        return pairs
