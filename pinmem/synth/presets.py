"""Named sets of `pinmem synth` parameters.

``demo`` is sized for the CPU demo (`pinmem demo`): small images, enough source images to train a small model in
a few minutes, a val split for every domain (source-val and target scores) and a train split for the targets
too (an oracle trained on a target shows that it is learnable). Change the numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pinmem.errors import ConfigError

SOURCES = ("gtav", "synthia")
ALL_STYLES = ("gtav", "synthia", "idd", "cityscapes", "bdd100k", "mapillary")


@dataclass(frozen=True)
class Preset:
    styles: tuple[str, ...]
    num_train: dict[str, int]
    num_val: dict[str, int]
    size: tuple[int, int]  # (width, height) before each style's resolution_scale
    seed: int = 0
    description: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    "demo": Preset(
        styles=ALL_STYLES,
        num_train={"gtav": 500, "synthia": 500, "idd": 200, "cityscapes": 200, "bdd100k": 200, "mapillary": 200},
        num_val={name: 100 for name in ALL_STYLES},
        size=(320, 160),
        description="six domains at 320x160: 500 train for each of gtav and synthia, 200 for the others, 100 val each",
    ),
    "default": Preset(
        styles=ALL_STYLES,
        num_train={name: 100 for name in ALL_STYLES},
        num_val={name: 50 for name in ALL_STYLES},
        size=(512, 256),
        description="six domains at 512x256, 100 train and 50 val each",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown synth preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
