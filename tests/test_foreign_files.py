"""Files in each native format written *without* the project's writers load to the right trainIds.

Each test builds the files the way the dataset's own tools do (Pillow palette images, 16-bit OpenCV PNGs,
cityscapesscripts' label table), independently of ``pinmem.data.writers``.
"""

import json

import cv2
import numpy as np
import pytest
from conftest import identity_transform, optional_module
from PIL import Image

from pinmem.data import build_dataset

cs_labels = optional_module("cityscapesscripts.helpers.labels", "pip install --no-deps cityscapesscripts")

# one row of native ids and the trainIds they must decode to
CS_IDS = [0, 1, 4, 5, 6, 7, 8, 9, 11, 12, 13, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31, 32, 33]
CS_TRAIN = [cs_labels.id2label[i].trainId if 0 <= cs_labels.id2label[i].trainId < 19 else 255 for i in CS_IDS]


def _image(h, w):
    return np.full((h, w, 3), 90, dtype=np.uint8)


def _save_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def test_gtav_palette_png(tmp_path):
    ids = np.array([CS_IDS], dtype=np.uint8).repeat(3, 0)
    label = Image.fromarray(ids, mode="P")
    palette = [0] * 768
    for lab in cs_labels.labels:
        if lab.id >= 0:
            palette[3 * lab.id : 3 * lab.id + 3] = lab.color
    label.putpalette(palette)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    label.save(tmp_path / "labels" / "00001.png")
    _save_png(tmp_path / "images" / "00001.png", _image(*ids.shape))
    ds = build_dataset("gtav", tmp_path, "all", transform=identity_transform)
    assert ds.load_label(0)[0].tolist() == CS_TRAIN


def test_gtav_colour_label(tmp_path):
    """A re-packing that stored labels as RGB colour images decodes by colour."""
    ids = [7, 8, 11, 21, 23, 24, 26, 33, 0]
    colours = np.array([[cs_labels.id2label[i].color for i in ids]], dtype=np.uint8)
    _save_png(tmp_path / "labels" / "valid" / "00002.png", colours)
    _save_png(tmp_path / "images" / "valid" / "00002.png", _image(1, len(ids)))
    ds = build_dataset("gtav", tmp_path, "val", transform=identity_transform)
    assert ds.load_label(0)[0].tolist() == [0, 1, 2, 8, 10, 11, 13, 18, 255]


def test_synthia_16bit_first_channel_in_rgb_order(tmp_path):
    ids = np.arange(23, dtype=np.uint16)
    rgb = np.zeros((2, 23, 3), dtype=np.uint16)
    rgb[:, :, 0] = ids  # class id in the first channel (RGB order)
    rgb[:, :, 1] = 1000 + ids  # instance ids: must not be read as classes
    (tmp_path / "GT" / "LABELS").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "GT" / "LABELS" / "0000001.png"), rgb[:, :, ::-1])  # OpenCV wants BGR
    _save_png(tmp_path / "RGB" / "0000001.png", _image(2, 23))
    (tmp_path / "train.txt").write_text("0000001\n")
    ds = build_dataset("synthia", tmp_path, "train", transform=identity_transform)
    expected = [255, 10, 2, 0, 1, 4, 8, 5, 13, 7, 11, 18, 17, 255, 255, 6, 9, 12, 14, 15, 16, 3, 255]
    assert ds.load_label(0)[0].tolist() == expected


def test_cityscapes_label_ids(tmp_path):
    stem = "aachen_000000_000019"
    _save_png(tmp_path / "gtFine" / "val" / "aachen" / f"{stem}_gtFine_labelIds.png",
              np.array([CS_IDS], dtype=np.uint8))
    _save_png(tmp_path / "leftImg8bit" / "val" / "aachen" / f"{stem}_leftImg8bit.png", _image(1, len(CS_IDS)))
    ds = build_dataset("cityscapes", tmp_path, "val", transform=identity_transform)
    assert ds.load_label(0)[0].tolist() == CS_TRAIN


@pytest.mark.parametrize("release", ["new", "old"])
def test_bdd100k_train_id_masks(tmp_path, release):
    mask = np.array([[0, 5, 13, 18, 255], [1, 2, 3, 4, 6]], dtype=np.uint8)  # non-square: a transposed read fails
    if release == "new":
        _save_png(tmp_path / "labels" / "sem_seg" / "masks" / "val" / "7d2f7975-e0c1c5a7.png", mask)
    else:
        _save_png(tmp_path / "seg" / "labels" / "val" / "7d2f7975-e0c1c5a7_train_id.png", mask)
    (tmp_path / "images" / "10k" / "val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "10k" / "val" / "7d2f7975-e0c1c5a7.jpg"), _image(2, 5))
    ds = build_dataset("bdd100k", tmp_path, "val", transform=identity_transform)
    assert ds.load_label(0).tolist() == mask.tolist()
    assert ds.load_image(0).shape == (2, 5, 3)


def test_mapillary_v12(tmp_path):
    names = [f"class-{i}" for i in range(66)]
    (tmp_path / "config.json").write_text(json.dumps({"labels": [{"name": n, "readable": n} for n in names]}))
    ids = np.array([[13, 24, 41, 2, 15, 17, 6, 3, 45, 47, 48, 50, 30, 29, 27, 19, 20, 21, 22, 55, 61, 54, 58, 57,
                     52, 0, 49, 65]], dtype=np.uint8)
    _save_png(tmp_path / "validation" / "labels" / "abc.png", ids)
    (tmp_path / "validation" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "validation" / "images" / "abc.jpg"), _image(1, ids.shape[1]))
    ds = build_dataset("mapillary", tmp_path, "val", transform=identity_transform)
    expected = [0, 0, 0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12, 13, 14, 15, 16, 17, 18, 255, 255, 255]
    assert ds.load_label(0)[0].tolist() == expected


def test_idd_cs_train_ids(tmp_path):
    stem = "frame0001"
    ids = np.array([[0, 7, 18, 255, 200]], dtype=np.uint8)
    _save_png(tmp_path / "gtFine" / "train" / "201" / f"{stem}_gtFine_labelcsTrainIds.png", ids)
    _save_png(tmp_path / "leftImg8bit" / "train" / "201" / f"{stem}_leftImg8bit.png", _image(1, 5))
    ds = build_dataset("idd", tmp_path, "train", transform=identity_transform)
    assert ds.load_label(0)[0].tolist() == [0, 7, 18, 255, 255]


def test_images_of_any_kind_become_rgb(tmp_path):
    from pinmem.data.io import read_image

    gray16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255  # red in RGB order
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    g = read_image(tmp_path / "g16.png")
    assert g.shape == (3, 4, 3) and g.dtype == np.uint8 and g[2, 3, 0] == (11 * 5000) >> 8
    r = read_image(tmp_path / "rgba.png")
    assert r.shape == (3, 4, 3) and r[0, 0].tolist() == [200, 0, 0]
