"""The 19 Cityscapes train classes and every dataset's native id -> trainId table, as data.

Each table maps a native id to a trainId in 0..18 or to :data:`IGNORE` (255). Ids a table does not list are
ignored as well; :func:`lookup_table` turns a table into a 256- or 65536-entry array for vectorised decoding.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

IGNORE = 255
NUM_CLASSES = 19

CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

#: RGB colour of each trainId (the Cityscapes palette).
PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


#: The full Cityscapes label definition (labelIds 0..33 and the license plate, -1). GTAV's label PNGs use the
#: same ids as palette indices and the same colours as palette.
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, IGNORE, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, IGNORE, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, IGNORE, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, IGNORE, (0, 0, 0)),
    CityscapesLabel("static", 4, IGNORE, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, IGNORE, (111, 74, 0)),
    CityscapesLabel("ground", 6, IGNORE, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, IGNORE, (250, 170, 160)),
    CityscapesLabel("rail track", 10, IGNORE, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, IGNORE, (180, 165, 180)),
    CityscapesLabel("bridge", 15, IGNORE, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, IGNORE, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, IGNORE, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, IGNORE, (0, 0, 90)),
    CityscapesLabel("trailer", 30, IGNORE, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, (0, 0, 142)),
)

#: Cityscapes labelId -> trainId (also GTAV's palette index -> trainId).
CITYSCAPES_ID_TO_TRAINID: dict[int, int] = {
    lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0 and 0 <= lab.train_id < NUM_CLASSES
}

#: SYNTHIA RAND-CITYSCAPES class id (first channel of the 16-bit GT PNG, RGB order) -> trainId.
SYNTHIA_ID_TO_TRAINID: dict[int, int] = {
    1: 10, 2: 2, 3: 0, 4: 1, 5: 4, 6: 8, 7: 5, 8: 13, 9: 7, 10: 11, 11: 18, 12: 17, 15: 6, 16: 9, 17: 12,
    18: 14, 19: 15, 20: 16, 21: 3,
}
#: The 66 Mapillary Vistas v1.2 label names, in id order (as in the release's ``config.json``).
MAPILLARY_V12_NAMES: tuple[str, ...] = (
    "animal--bird", "animal--ground-animal", "construction--barrier--curb", "construction--barrier--fence",
    "construction--barrier--guard-rail", "construction--barrier--other-barrier", "construction--barrier--wall",
    "construction--flat--bike-lane", "construction--flat--crosswalk-plain", "construction--flat--curb-cut",
    "construction--flat--parking", "construction--flat--pedestrian-area", "construction--flat--rail-track",
    "construction--flat--road", "construction--flat--service-lane", "construction--flat--sidewalk",
    "construction--structure--bridge", "construction--structure--building", "construction--structure--tunnel",
    "human--person", "human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider",
    "marking--crosswalk-zebra", "marking--general", "nature--mountain", "nature--sand", "nature--sky",
    "nature--snow", "nature--terrain", "nature--vegetation", "nature--water", "object--banner", "object--bench",
    "object--bike-rack", "object--billboard", "object--catch-basin", "object--cctv-camera",
    "object--fire-hydrant", "object--junction-box", "object--mailbox", "object--manhole", "object--phone-booth",
    "object--pothole", "object--street-light", "object--support--pole", "object--support--traffic-sign-frame",
    "object--support--utility-pole", "object--traffic-light", "object--traffic-sign--back",
    "object--traffic-sign--front", "object--trash-can", "object--vehicle--bicycle", "object--vehicle--boat",
    "object--vehicle--bus", "object--vehicle--car", "object--vehicle--caravan", "object--vehicle--motorcycle",
    "object--vehicle--on-rails", "object--vehicle--other-vehicle", "object--vehicle--trailer",
    "object--vehicle--truck", "object--vehicle--wheeled-slow", "void--car-mount", "void--ego-vehicle",
    "void--unlabeled",
)

#: Mapillary Vistas v1.2 id -> trainId.
MAPILLARY_V12_ID_TO_TRAINID: dict[int, int] = {
    13: 0, 24: 0, 41: 0, 2: 1, 15: 1, 17: 2, 6: 3, 3: 4, 45: 5, 47: 5, 48: 6, 50: 7, 30: 8, 29: 9, 27: 10,
    19: 11, 20: 12, 21: 12, 22: 12, 55: 13, 61: 14, 54: 15, 58: 16, 57: 17, 52: 18,
}

#: BDD100K and IDD (csTrainIds) labels already hold trainIds.
IDENTITY_TO_TRAINID: dict[int, int] = {c: c for c in range(NUM_CLASSES)}


def lookup_table(table: dict[int, int], size: int = 256) -> np.ndarray:
    """A ``size``-entry uint8 array with ``lut[native_id] = trainId`` and 255 for every id the table lacks."""
    lut = np.full(size, IGNORE, dtype=np.uint8)
    for native, train in table.items():
        lut[native] = train
    return lut


def inverse_table(table: dict[int, int]) -> dict[int, int]:
    """trainId -> one native id that maps to it (the smallest), for the format writers."""
    inverse: dict[int, int] = {}
    for native, train in sorted(table.items()):
        inverse.setdefault(train, native)
    return inverse


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """H×W trainIds -> H×W×3 RGB colours from :data:`PALETTE`; ignore (and any id ≥ 19) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[train_ids]
