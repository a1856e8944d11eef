"""Writing worlds: every native format reloads exactly, `data check` accepts it, generation is idempotent and
does not depend on the number of workers; the `synth` command."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from pinmem.commands.synth import parse_size, register
from pinmem.data import build_dataset
from pinmem.data.base import no_transform
from pinmem.data.check import check_dataset
from pinmem.errors import PinmemError
from pinmem.synth import generate_world, render_scene
from pinmem.synth.style_io import load_style
from pinmem.synth.world import MANIFEST, VAL_OFFSET

SIZE = (96, 48)
ALL = ("gtav", "synthia", "idd", "cityscapes", "bdd100k", "mapillary")
JPEG = {"bdd100k", "mapillary"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    roots = generate_world(out, ALL, num_train=3, num_val=2, size=SIZE, seed=7, progress=False)
    return out, roots


def _jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


@pytest.mark.parametrize("name", ALL)
def test_each_format_reloads_exactly(world, name: str) -> None:
    _, roots = world
    assert roots[name].name == name
    for split, indices in (("train", range(3)), ("val", range(VAL_OFFSET, VAL_OFFSET + 2))):
        dataset = build_dataset(name, roots[name], split, transform=no_transform)
        assert len(dataset) == len(indices)
        for i, index in enumerate(indices):
            scene = render_scene(name, 7, index, SIZE)
            image, label = dataset.load_pair(i)
            assert np.array_equal(label, scene.label), f"{name}/{split}/{i}: labels differ"
            if name in JPEG:  # exactly what JPEG at the style's quality makes of the rendered picture
                assert np.abs(image.astype(int) - scene.image.astype(int)).mean() < 12
                assert np.array_equal(image, _jpeg_round_trip(scene.image, load_style(name).sensor.jpeg_quality))
            else:
                assert np.array_equal(image, scene.image)


@pytest.mark.parametrize("name", ALL)
def test_data_check_accepts_the_world(world, name: str) -> None:
    _, roots = world
    report = check_dataset(name, str(roots[name]), "all", progress=False)
    assert report.ok and report.pairs == 5 and not report.unknown_values
    assert report.class_pixels.sum() > 0


def test_manifest_and_idempotence(world) -> None:
    out, roots = world
    manifest = json.loads((roots["cityscapes"] / MANIFEST).read_text())
    assert manifest["complete"] and manifest["num_train"] == 3 and manifest["size"] == list(SIZE)
    assert manifest["image_size"] == list(SIZE)
    assert json.loads((roots["mapillary"] / MANIFEST).read_text())["image_size"] == [144, 72]  # 1.5x
    before = {p: p.stat().st_mtime_ns for p in roots["gtav"].rglob("*")}
    generate_world(out, ["gtav"], num_train=3, num_val=2, size=SIZE, seed=7, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in roots["gtav"].rglob("*")}


def test_changed_parameters_regenerate(tmp_path) -> None:
    roots = generate_world(tmp_path, ["synthia"], num_train=2, num_val=1, size=SIZE, progress=False)
    assert len(build_dataset("synthia", roots["synthia"], "train", transform=no_transform)) == 2
    generate_world(tmp_path, ["synthia"], num_train=3, num_val=1, size=SIZE, progress=False)
    assert len(build_dataset("synthia", roots["synthia"], "train", transform=no_transform)) == 3


def test_refuses_to_overwrite_a_foreign_folder(tmp_path) -> None:
    (tmp_path / "gtav").mkdir()
    (tmp_path / "gtav" / "precious.txt").write_text("mine")
    with pytest.raises(PinmemError, match="not a synthetic world"):
        generate_world(tmp_path, ["gtav"], num_train=1, num_val=1, size=SIZE, progress=False)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "split.mat"}  # scipy stamps split.mat with the time


def test_workers_do_not_change_the_output(tmp_path) -> None:
    one = generate_world(tmp_path / "one", ["gtav", "bdd100k"], 4, 2, SIZE, seed=3, workers=1, progress=False)
    two = generate_world(tmp_path / "two", ["gtav", "bdd100k"], 4, 2, SIZE, seed=3, workers=2, progress=False)
    for name in one:
        assert _files(one[name]) == _files(two[name])


def test_user_style_writes_its_format(tmp_path) -> None:
    path = tmp_path / "foggy.yaml"
    path.write_text("extends: cityscapes\nname: foggy\nformat: bdd100k\nweather: {fog_prob: 1.0}\n")
    roots = generate_world(tmp_path / "out", [path], num_train=1, num_val=1, size=SIZE, progress=False)
    assert roots["foggy"] == tmp_path / "out" / "foggy"
    assert check_dataset("bdd100k", str(roots["foggy"]), progress=False).ok


def test_duplicate_style_names_are_refused(tmp_path) -> None:
    with pytest.raises(PinmemError, match="two styles"):
        generate_world(tmp_path, ["gtav", "gtav"], 1, 1, SIZE, progress=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinmem")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_the_synth_command(tmp_path, capsys) -> None:
    args = _parser().parse_args(["synth", "--out", str(tmp_path), "--styles", "idd", "cityscapes", "--num", "2",
                                 "--val-num", "1", "--size", "96x48", "--seed", "4", "--quiet",
                                 "--preview", str(tmp_path / "sheet.png")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "idd" in out and "cityscapes" in out and (tmp_path / "sheet.png").stat().st_size > 0
    assert len(build_dataset("idd", tmp_path / "idd", "val", transform=no_transform)) == 1


def test_the_demo_preset_resolves() -> None:
    from pinmem.commands.synth import resolve

    plan = resolve(_parser().parse_args(["synth", "--out", "x", "--preset", "demo"]))
    assert [s.name for s in plan.styles] == list(ALL)
    assert plan.size == (320, 160) and plan.num_train["gtav"] >= 200 and plan.num_val["cityscapes"] >= 50
    plan = resolve(_parser().parse_args(["synth", "--out", "x", "--preset", "demo", "--num", "5", "--size", "64x32"]))
    assert set(plan.num_train.values()) == {5} and plan.size == (64, 32)


@pytest.mark.parametrize("text", ["512", "ax2", "4x4", "512x256x3"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)
    assert parse_size("512X256") == (512, 256)


def test_a_world_carries_its_evaluation_protocol(world, tmp_path) -> None:
    """One protocol per world: the generated mapillary style is scored at its native size (synth.json), while
    the same files without the manifest get the real Mapillary protocol (height 1536, centre crop)."""
    import shutil

    _, roots = world
    dataset = build_dataset("mapillary", roots["mapillary"], "val")
    assert dataset.transform.height is None and dataset.transform.center_crop is None
    image = dataset[0]["image"]
    assert tuple(image.shape[-2:]) == dataset.load_pair(0)[0].shape[:2]
    copy = tmp_path / "mapillary"
    shutil.copytree(roots["mapillary"], copy)
    (copy / MANIFEST).unlink()
    real = build_dataset("mapillary", copy, "val")
    assert real.transform.height == 1536 and real[0]["image"].shape[-2:] == (1536, 1536)
