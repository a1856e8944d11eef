import numpy as np
from conftest import optional_module

from pinmem.data import labels as L


def test_cityscapes_table_matches_cityscapesscripts():
    cs = optional_module("cityscapesscripts.helpers.labels", "pip install --no-deps cityscapesscripts")
    theirs = {lab.id: lab.trainId for lab in cs.labels if lab.id >= 0 and 0 <= lab.trainId < 19}
    assert L.CITYSCAPES_ID_TO_TRAINID == theirs
    for ours in L.CITYSCAPES_LABELS:
        ref = cs.id2label[ours.id]
        assert (ours.name, ours.color) == (ref.name, ref.color)
        assert ours.train_id == (ref.trainId if ref.trainId in range(19) or ref.trainId == -1 else 255)


def test_classes_and_palette_match_cityscapesscripts():
    cs = optional_module("cityscapesscripts.helpers.labels", "pip install --no-deps cityscapesscripts")
    for train_id, name in enumerate(L.CLASSES):
        ref = cs.trainId2label[train_id]
        assert ref.name == name
        assert tuple(L.PALETTE[train_id]) == ref.color


def test_spec_tables():
    assert L.SYNTHIA_ID_TO_TRAINID[3] == 0 and L.SYNTHIA_ID_TO_TRAINID[21] == 3
    assert 0 not in L.SYNTHIA_ID_TO_TRAINID and 22 not in L.SYNTHIA_ID_TO_TRAINID
    assert len(L.MAPILLARY_V12_NAMES) == 66
    by_name = {L.MAPILLARY_V12_NAMES[i]: t for i, t in L.MAPILLARY_V12_ID_TO_TRAINID.items()}
    assert by_name["construction--flat--road"] == 0
    assert by_name["object--vehicle--car"] == 13
    assert by_name["object--traffic-sign--front"] == 7
    assert by_name["human--rider--motorcyclist"] == 12
    # every table covers each of the 19 classes (SYNTHIA too: it defines terrain, truck, train ids)
    for table in (L.CITYSCAPES_ID_TO_TRAINID, L.SYNTHIA_ID_TO_TRAINID, L.MAPILLARY_V12_ID_TO_TRAINID):
        assert set(table.values()) == set(range(19))


def test_lookup_table_ignores_unlisted_ids():
    lut = L.lookup_table({5: 1, 7: 0})
    assert lut[5] == 1 and lut[7] == 0 and lut[6] == 255 and lut.dtype == np.uint8
    assert L.colorize(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[[128, 64, 128], [0, 0, 0]]]
