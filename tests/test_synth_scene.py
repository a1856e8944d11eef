"""Scenes: deterministic, exact labels, every class at plausible rates, geometry shared by all styles."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from pinmem.data.labels import IGNORE, NUM_CLASSES
from pinmem.synth import render_scene
from pinmem.synth.render import class_table, paint_objects
from pinmem.synth.scene import scene_layout
from pinmem.synth.style_io import load_style, shipped_styles

SIZE = (128, 64)


@pytest.mark.parametrize("name", ["gtav", "bdd100k"])
def test_same_arguments_give_the_same_bytes(name: str) -> None:
    a = render_scene(name, 5, 17, SIZE)
    b = render_scene(load_style(name), 5, 17, SIZE)
    assert a.image.tobytes() == b.image.tobytes() and a.label.tobytes() == b.label.tobytes()


def test_the_same_bytes_in_a_fresh_process() -> None:
    code = ("import hashlib; from pinmem.synth import render_scene; s = render_scene('mapillary', 1, 2, (96, 48)); "
            "print(hashlib.sha256(s.image.tobytes() + s.label.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    import hashlib

    here = render_scene("mapillary", 1, 2, (96, 48))
    assert out == hashlib.sha256(here.image.tobytes() + here.label.tobytes()).hexdigest()


def test_other_index_seed_or_style_give_other_scenes() -> None:
    base = render_scene("gtav", 0, 0, SIZE)
    for other in (render_scene("gtav", 0, 1, SIZE), render_scene("gtav", 1, 0, SIZE),
                  render_scene("synthia", 0, 0, SIZE)):
        assert not np.array_equal(base.label, other.label)
        assert not np.array_equal(base.image, other.image)


@pytest.mark.parametrize("name", ["gtav", "synthia", "idd", "cityscapes", "bdd100k", "mapillary"])
def test_scene_arrays(name: str) -> None:
    scene = render_scene(name, 0, 3, SIZE)
    scale = load_style(name).camera.resolution_scale
    h, w = round(SIZE[1] * scale), round(SIZE[0] * scale)
    assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
    assert scene.label.shape == (h, w) and scene.label.dtype == np.uint8
    assert set(np.unique(scene.label)) <= set(range(NUM_CLASSES)) | {IGNORE}
    assert scene.image.std() > 10  # not a blank picture


def _label_only(style, index: int, size=SIZE) -> np.ndarray:
    """The label map without painting the picture (the label never depends on appearance)."""
    layout = scene_layout(style, 0, index, size)
    return class_table(layout)[paint_objects(layout)]


def test_the_label_is_what_the_renderer_paints() -> None:
    style = load_style("cityscapes")
    for index in range(3):
        assert np.array_equal(_label_only(style, index), render_scene(style, 0, index, SIZE).label)


@pytest.mark.parametrize("name", ["gtav", "cityscapes"])
def test_every_class_appears_across_a_few_hundred_scenes(name: str) -> None:
    style = load_style(name)
    pixels = np.zeros(256, np.int64)
    scenes_with = np.zeros(256, np.int64)
    count = 250
    for index in range(count):
        hist = np.bincount(_label_only(style, index).ravel(), minlength=256)
        pixels += hist
        scenes_with += hist > 0
    share = pixels / pixels.sum()
    assert (pixels[:NUM_CLASSES] > 0).all(), f"classes never drawn: {np.flatnonzero(pixels[:NUM_CLASSES] == 0)}"
    # plausible frequencies: the stuff classes dominate, every scene has road, building, sky is common
    assert share[0] > 0.15 and share[2] > 0.1 and share[8] > 0.05 and share[13] > 0.03
    assert scenes_with[0] == count and scenes_with[10] > 0.8 * count and scenes_with[13] > 0.9 * count
    assert 0 < scenes_with[16] < 0.3 * count  # a train now and then
    assert scenes_with[12] <= min(scenes_with[17] + scenes_with[18], count)  # riders come with two-wheelers
    assert share[:NUM_CLASSES].min() > 1e-4


def test_cityscapes_has_the_ego_bonnet_as_ignore_at_the_bottom() -> None:
    label = render_scene("cityscapes", 0, 4, (128, 64)).label
    assert (label[-1] == IGNORE).all()
    assert (label[0] != IGNORE).any()


def test_geometry_is_shared_and_appearance_alone_differs() -> None:
    """Two styles with the same name, camera and layout sections draw the same label map in other colours."""
    gtav, cityscapes = load_style("gtav"), load_style("cityscapes")
    lookalike = dataclasses.replace(cityscapes, name="gtav", camera=gtav.camera, layout=gtav.layout)
    for index in range(4):
        a, b = render_scene(gtav, 0, index, SIZE), render_scene(lookalike, 0, index, SIZE)
        assert np.array_equal(a.label, b.label)
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 10


@pytest.mark.parametrize("target", ["cityscapes", "bdd100k", "mapillary", "synthia"])
def test_geometry_from_another_style(target: str) -> None:
    source = render_scene("gtav", 2, 9, SIZE)
    moved = render_scene(target, 2, 9, SIZE, geometry_from="gtav")
    assert np.array_equal(source.label, moved.label)
    assert not np.array_equal(source.image, moved.image)


def test_shipped_styles_render_at_a_larger_size_too() -> None:
    for name in shipped_styles():
        scene = render_scene(name, 0, 1, (256, 128))
        assert scene.label.shape[1] >= 256
