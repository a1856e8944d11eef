"""Style files: the shipped ones load, user files extend them, bad keys and values are named in the error."""

from __future__ import annotations

import pytest
import yaml

from pinmem.errors import ConfigError
from pinmem.synth.style import CLASS_KEYS, FORMATS
from pinmem.synth.style_io import STYLES_DIR, load_style, shipped_styles

SHIPPED = ("gtav", "synthia", "idd", "cityscapes", "bdd100k", "mapillary")


def test_the_six_domains_are_shipped_and_load() -> None:
    assert sorted(shipped_styles()) == sorted(SHIPPED)
    for name in SHIPPED:
        style = load_style(name)
        assert style.name == name and style.format == name  # shipped styles write their own dataset's format
        assert len(style.classes) == len(CLASS_KEYS) == 19
        assert style.digest and style.source.endswith(f"{name}.yaml")


def test_shipped_styles_are_complete_files_without_defaults_for_classes() -> None:
    for name in SHIPPED:
        data = yaml.safe_load((STYLES_DIR / f"{name}.yaml").read_text())
        assert set(data["classes"]) == set(CLASS_KEYS)


def test_styles_differ_in_appearance_and_camera() -> None:
    gtav, synthia, cityscapes = (load_style(n) for n in ("gtav", "synthia", "cityscapes"))
    assert synthia.camera.height[0] > gtav.camera.height[1]  # SYNTHIA's high viewpoints
    assert gtav.classes[13].colors != cityscapes.classes[13].colors
    assert len({load_style(n).digest for n in SHIPPED}) == 6


def _write(tmp_path, text: str, name: str = "mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_user_style_extends_a_shipped_one(tmp_path) -> None:
    path = _write(tmp_path, "extends: cityscapes\nname: rainycity\nweather: {rain_prob: 1.0}\n"
                            "classes: {car: {colors: [[255, 0, 255]]}}\n")
    style = load_style(path)
    base = load_style("cityscapes")
    assert style.name == "rainycity" and style.format == "cityscapes"
    assert style.weather.rain_prob == 1.0 and style.weather.night_prob == base.weather.night_prob
    assert style.classes[13].colors == ((255.0, 0.0, 255.0),)
    assert style.classes[13].spread == base.classes[13].spread  # merged key by key
    assert style.classes[0] == base.classes[0]


def test_a_user_style_names_its_format(tmp_path) -> None:
    path = _write(tmp_path, "extends: gtav\nname: night_gta\nformat: bdd100k\n")
    assert load_style(path).format == "bdd100k"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("extends: gtav\ncolour: 3\n", "colour"),
        ("extends: gtav\ncamera: {horizn: 0.5}\n", "camera.horizn"),
        ("extends: gtav\nlighting: {brightness: [1.2, 0.8]}\n", "lighting.brightness"),
        ("extends: gtav\nweather: {night_prob: 1.5}\n", "weather.night_prob"),
        ("extends: gtav\nsensor: {jpeg_quality: 'high'}\n", "sensor.jpeg_quality"),
        ("extends: gtav\nlayout: {cars: [1, 2, 3]}\n", "layout.cars"),
        ("extends: gtav\nlayout: {cars: [1.5, 3]}\n", "layout.cars"),
        ("extends: gtav\nclasses: {car: {colors: [[300, 0, 0]]}}\n", "classes.car.colors"),
        ("extends: gtav\nclasses: {car: {pattern: zigzag}}\n", "classes.car.pattern"),
        ("extends: gtav\nclasses: {cars: {spread: 3}}\n", "classes.cars"),
        ("extends: gtav\nclasses: {car: {shininess: 3}}\n", "classes.car.shininess"),
        ("extends: gtav\nmaterials: {chrome: {spread: 3}}\n", "materials.chrome"),
        ("extends: gtav\nformat: kitti\n", "format"),
        ("extends: gtav\ncamera: 3\n", "camera"),
        ("name: bare\nformat: gtav\nclasses: {road: {spread: 1}}\n", "classes"),
        ("extends: gtav\nname: 'a b'\n", "name"),
        ("extends: 7\n", "extends"),
    ],
)
def test_bad_style_files_name_the_file_and_key(tmp_path, text: str, key: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_style(path)
    assert f"'{key}'" in str(err.value)
    assert str(path) in str(err.value)


def test_unreadable_and_missing_styles(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown style 'nowhere'"):
        load_style("nowhere")
    with pytest.raises(ConfigError, match="YAML"):
        load_style(_write(tmp_path, "classes: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_style(_write(tmp_path, "- a list\n", "list.yaml"))
    a = _write(tmp_path, "extends: b.yaml\n", "a.yaml")
    _write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="loops"):
        load_style(a)


def test_formats_cover_the_six_writers() -> None:
    from pinmem.data.writers import WRITERS

    assert set(FORMATS) == set(WRITERS)
