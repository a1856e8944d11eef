"""Round trips through every native format and the loaders' handling of layouts and bad input."""

import json

import numpy as np
import pytest
from conftest import identity_transform

from pinmem.data import DATASETS, build_dataset
from pinmem.errors import CorruptFileError, DatasetLayoutError

FORMATS = [
    ("gtav", {}), ("gtav", {"layout": "repacked"}), ("synthia", {}), ("cityscapes", {}),
    ("bdd100k", {}), ("bdd100k", {"release": "old"}), ("mapillary", {}), ("idd", {}),
]
JPEG = {"bdd100k", "mapillary"}


@pytest.mark.parametrize(("name", "options"), FORMATS, ids=[f"{n}-{o}" for n, o in FORMATS])
def test_round_trip(write_dataset, name, options):
    written = write_dataset(name, counts={"train": 3, "val": 2}, **options)
    for split in ("train", "val"):
        ds = build_dataset(name, written.root, split, transform=identity_transform)
        assert len(ds) == len(written.labels[split])
        for i in range(len(ds)):
            label = ds.load_label(i)
            assert label.dtype == np.uint8 and label.shape == (40, 50)
            np.testing.assert_array_equal(label, written.labels[split][i])
            image = ds.load_image(i)
            assert image.dtype == np.uint8 and image.shape == (40, 50, 3)
            diff = np.abs(image.astype(int) - written.images[split][i].astype(int))
            assert diff.max() <= (40 if name in JPEG else 0)  # chroma subsampling at colour edges
            assert diff.mean() <= (4.0 if name in JPEG else 0)
    assert len(build_dataset(name, written.root, "all", transform=identity_transform)) == 5


def test_files_are_sorted_pairs(write_dataset):
    written = write_dataset("cityscapes", counts={"train": 4})
    ds = build_dataset("cityscapes", written.root, "train", transform=identity_transform)
    assert ds.files == sorted(ds.files)
    for image, label in ds.files:
        assert image.name.replace("_leftImg8bit.png", "") == label.name.replace("_gtFine_labelIds.png", "")


def test_native_split_names(write_dataset):
    gtav = write_dataset("gtav", counts={"train": 2, "val": 1}, layout="repacked")
    assert (gtav.root / "images" / "valid").is_dir()
    assert len(build_dataset("gtav", gtav.root, "val", transform=identity_transform)) == 1
    mapillary = write_dataset("mapillary", counts={"train": 2, "val": 1})
    assert (mapillary.root / "training" / "images").is_dir()
    assert len(build_dataset("mapillary", mapillary.root, "train", transform=identity_transform)) == 2


def test_gtav_flat_uses_split_mat(write_dataset):
    written = write_dataset("gtav", counts={"train": 2, "val": 2, "test": 1})
    assert (written.root / "split.mat").is_file()
    sizes = {s: len(build_dataset("gtav", written.root, s, transform=identity_transform))
             for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 2, "val": 2, "test": 1, "all": 5}
    (written.root / "split.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="split.mat"):
        build_dataset("gtav", written.root, "train", transform=identity_transform)
    assert len(build_dataset("gtav", written.root, "all", transform=identity_transform)) == 5


def test_missing_root_and_folder_are_named(tmp_path, write_dataset):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        build_dataset("cityscapes", tmp_path / "nowhere", "val")
    written = write_dataset("cityscapes", counts={"train": 1})
    with pytest.raises(DatasetLayoutError, match=r"leftImg8bit/val"):
        build_dataset("cityscapes", written.root, "val")
    with pytest.raises(DatasetLayoutError, match="unknown split"):
        build_dataset("cityscapes", written.root, "training")
    with pytest.raises(DatasetLayoutError, match="unknown dataset"):
        build_dataset("kitti", written.root, "train")


def test_image_without_label_is_named(write_dataset):
    written = write_dataset("idd", counts={"train": 2})
    ds = build_dataset("idd", written.root, "train", transform=identity_transform)
    ds.files[0][1].unlink()
    with pytest.raises(DatasetLayoutError, match="have no label file"):
        build_dataset("idd", written.root, "train", transform=identity_transform)


def test_corrupt_image_names_the_file(write_dataset):
    written = write_dataset("synthia", counts={"train": 2})
    ds = build_dataset("synthia", written.root, "train", transform=identity_transform)
    ds.files[1][0].write_bytes(ds.files[1][0].read_bytes()[:60])
    with pytest.raises(CorruptFileError, match=str(ds.files[1][0].name)):
        ds.load_image(1)
    ds.load_image(0)


def test_size_mismatch_found_and_dropped(write_dataset):
    from pinmem.data.io import write_png

    written = write_dataset("cityscapes", counts={"train": 3})
    ds = build_dataset("cityscapes", written.root, "train", transform=identity_transform)
    write_png(ds.files[1][1], np.zeros((20, 50), dtype=np.uint8))
    assert ds.find_size_mismatches() == [1]
    with pytest.raises(CorruptFileError, match="but label"):
        ds.load_pair(1)
    bad_pair = ds.files[1]
    ds.drop([1])
    assert len(ds) == 2 and bad_pair not in ds.files


def test_unknown_native_ids_become_ignore(write_dataset):
    from pinmem.data.io import write_png

    written = write_dataset("cityscapes", counts={"train": 1})
    ds = build_dataset("cityscapes", written.root, "train", transform=identity_transform)
    write_png(ds.files[0][1], np.array([[7, 200, 26, 34]], dtype=np.uint8).repeat(40, 0).repeat(12, 1)[:, :50])
    label = ds.load_label(0)
    assert set(np.unique(label)) == {0, 13, 255}


def test_mapillary_versions(write_dataset, tmp_path):
    written = write_dataset("mapillary", counts={"val": 1})
    config = written.root / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({"labels": data["labels"] * 2}))  # 132 labels: not v1.2
    with pytest.raises(DatasetLayoutError, match="v2.0"):
        build_dataset("mapillary", written.root, "val")
    config.unlink()
    (written.root / "config_v2.0.json").write_text("{}")
    with pytest.raises(DatasetLayoutError, match="only Vistas v2.0"):
        build_dataset("mapillary", written.root, "val")
    # the v2.0 download's v1.2 labels: config_v1.2.json and {split}/v1.2/labels
    (written.root / "config_v1.2.json").write_text(json.dumps(data))
    (written.root / "validation" / "labels").rename(written.root / "validation" / "v1.2")
    (written.root / "validation" / "v1.2").rename(written.root / "validation" / "tmp")
    (written.root / "validation" / "v1.2").mkdir()
    (written.root / "validation" / "tmp").rename(written.root / "validation" / "v1.2" / "labels")
    ds = build_dataset("mapillary", written.root, "val", transform=identity_transform)
    np.testing.assert_array_equal(ds.load_label(0), written.labels["val"][0])


def test_registry_lists_six_datasets():
    assert sorted(DATASETS) == ["bdd100k", "cityscapes", "gtav", "idd", "mapillary", "synthia"]


def test_training_dataset_skips_mismatches_with_a_logged_count(write_dataset, caplog):
    from pinmem.data import build_training_dataset
    from pinmem.data.io import write_png

    written = write_dataset("gtav", counts={"train": 3}, layout="repacked")
    ds = build_dataset("gtav", written.root, "train", transform=identity_transform)
    write_png(ds.files[0][1], np.zeros((7, 9), dtype=np.uint8))
    with caplog.at_level("WARNING"):
        train = build_training_dataset("gtav", written.root, "train", transform=identity_transform)
    assert len(train) == 2 and ds.files[0] not in train.files
    assert "skipping 1 of 3" in caplog.text
