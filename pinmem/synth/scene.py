"""One scene from (style, seed, index): a layout, painted in the style, with its effects.

Randomness comes from two generators seeded through :class:`numpy.random.SeedSequence` from the seed, the
index and a stable hash of a name: one for the geometry (named after the style the geometry comes from) and one
for the appearance (named after the style itself). Nothing touches a global generator, so the same arguments
give the same bytes in any process.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pinmem.synth.effects import apply_effects, draw_conditions
from pinmem.synth.layout import build_layout
from pinmem.synth.primitives import Layout
from pinmem.synth.render import paint
from pinmem.synth.style import Style
from pinmem.synth.style_io import load_style

_GEOMETRY, _APPEARANCE = 1, 2


def _generator(seed: int, index: int, name: str, stream: int) -> np.random.Generator:
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), key, stream]))


def render_size(style: Style, size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) a style renders at for a requested size (its camera's resolution scale applied)."""
    scale = style.camera.resolution_scale
    return max(int(round(size[0] * scale)), 8), max(int(round(size[1] * scale)), 8)


def scene_layout(style: Style, seed: int, index: int, size: tuple[int, int]) -> Layout:
    """The geometry of scene ``index``: depends only on the style's name, camera and layout sections."""
    rng = _generator(seed, index, style.name, _GEOMETRY)
    return build_layout(style.camera, style.layout, render_size(style, size), rng)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # H×W×3 RGB uint8
    label: np.ndarray  # H×W uint8 trainIds, 255 = ignore


def render_scene(style: Style | str | Path, seed: int, index: int, size: tuple[int, int],
                 geometry_from: Style | str | Path | None = None) -> Scene:
    """Render scene ``index`` of ``style`` at ``size`` = (width, height).

    ``geometry_from`` takes the geometry (layout, camera, image size) from another style: the label map is then
    exactly that style's, while the pixels are painted in ``style``. Appearance alone differs.
    """
    style = load_style(style)
    geometry = load_style(geometry_from) if geometry_from is not None else style
    layout = scene_layout(geometry, seed, index, size)
    rng = _generator(seed, index, style.name, _APPEARANCE)
    cond = draw_conditions(style, rng)
    canvas = paint(layout, style, rng, cond.sunny, cond.shadow)
    image = apply_effects(canvas, layout.view, style, cond, rng)
    return Scene(image, canvas.label)
