"""IDD (third source in G+S+I): Cityscapes-like folders with ``gtFine_labelcsTrainIds`` labels.

The csTrainId label files are produced by the IDD toolkit's label script (``--level csTrainId``); they already
hold Cityscapes trainIds with 255 for ignore.
"""

from __future__ import annotations

from pinmem.data.cityscapes import CityscapesDataset
from pinmem.data.labels import IDENTITY_TO_TRAINID, IGNORE


class IDDDataset(CityscapesDataset):
    name = "idd"
    layout = (
        "  ROOT/leftImg8bit/{train,val}/<sequence>/<name>_leftImg8bit.png\n"
        "  ROOT/gtFine/{train,val}/<sequence>/<name>_gtFine_labelcsTrainIds.png  (IDD toolkit, level csTrainId)"
    )
    split_folders = {"train": ("train",), "val": ("val",)}
    id_to_train = IDENTITY_TO_TRAINID
    known_ids = frozenset([*range(19), IGNORE])
    label_suffix = "_gtFine_labelcsTrainIds.png"
