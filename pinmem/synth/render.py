"""Painting a layout: the exact label map and the image before lighting, weather and sensor effects.

Every primitive is filled, back to front, into an *object map* with its index (0 is the sky behind
everything). The label map is the class of the primitive painted last at each pixel and the image is built from
the same map, so label and image agree exactly. Appearance (colours, textures, shading) comes from the style;
per-object colours are drawn once per (object, material) so that the parts of one car share their paint.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pinmem.synth.camera import View
from pinmem.synth.primitives import GROUND, Layout
from pinmem.synth.style import Look, Style
from pinmem.synth.textures import noise_bank, stripes, window

SKY = 10
LIT_WINDOW = np.array([255.0, 205.0, 130.0], dtype=np.float32)
_PATTERNS = {"none": (0, 0), "hstripes": (1, 0), "vstripes": (0, 1), "grid": (1, 1)}


@dataclass
class Canvas:
    """A painted scene: the object map and per-primitive tables, the label map and the base image."""

    objects: np.ndarray  # H×W int32 primitive index
    label: np.ndarray  # H×W uint8 trainIds / 255
    image: np.ndarray  # H×W×3 float32, 0..255 (may overshoot)
    emissive: np.ndarray  # per primitive bool
    emit_color: np.ndarray  # per primitive RGB used when glowing
    depth: np.ndarray  # per primitive depth, inf for the sky
    ground: np.ndarray  # per primitive bool
    shadow: np.ndarray | None  # H×W float32 0..1 sun-shadow mask (None when not sunny)


def fixed_point(view: View, groups: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Groups of float polygons -> the same groups as int32 points in 1/16 pixel (for ``shift=4``), with the
    camera roll applied; converted in one batch because scenes hold thousands of small polygons."""
    counts = [len(g) for g in groups]
    flat = [p for g in groups for p in g]
    if not flat:
        return [[] for _ in groups]
    points = view.apply_roll(np.concatenate(flat))
    fixed = np.round(np.clip(points, -1e7, 1e7) * 16).astype(np.int32)
    parts = np.split(fixed, np.cumsum([len(p) for p in flat])[:-1])
    out, start = [], 0
    for n in counts:
        out.append(parts[start : start + n])
        start += n
    return out


def paint_objects(layout: Layout) -> np.ndarray:
    """Fill every primitive's polygons with its index (1-based) in painting order."""
    view = layout.view
    objects = np.zeros((view.height, view.width), dtype=np.int32)
    groups = fixed_point(view, [prim.polys for prim in layout.primitives])
    for index, (prim, pts) in enumerate(zip(layout.primitives, groups, strict=True), start=1):
        if prim.evenodd or len(pts) == 1:
            cv2.fillPoly(objects, pts, index, lineType=cv2.LINE_8, shift=4)
        else:
            for poly in pts:
                cv2.fillPoly(objects, [poly], index, lineType=cv2.LINE_8, shift=4)
    return objects


def class_table(layout: Layout) -> np.ndarray:
    return np.array([SKY] + [p.cls for p in layout.primitives], dtype=np.uint8)


def _draw_color(look: Look, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(look.colors[int(rng.integers(0, len(look.colors)))], dtype=np.float32)
    return np.clip(base + rng.normal(0.0, look.spread, 3).astype(np.float32), 0, 255)


def paint(layout: Layout, style: Style, rng: np.random.Generator, sunny: bool, shadow: float) -> Canvas:
    """The label map and the textured, shaded base image of a layout in ``style``."""
    view = layout.view
    h, w = view.height, view.width
    objects = paint_objects(layout)
    label = class_table(layout)[objects]
    n = len(layout.primitives) + 1
    color = np.zeros((n, 3), np.float32)
    emit = np.zeros((n, 3), np.float32)
    grain = np.zeros(n, np.float32)
    blotch = np.zeros(n, np.float32)
    shade = np.zeros(n, np.float32)
    emissive = np.zeros(n, bool)
    depth = np.full(n, np.inf, np.float32)
    ground = np.zeros(n, bool)
    patterns: dict[float, np.ndarray] = {}  # period -> (n, 2) horizontal/vertical stripe strengths
    cache: dict[tuple[int, str], np.ndarray] = {}
    sky_look = style.look(SKY)
    color[0] = _draw_color(sky_look, rng)
    grain[0], blotch[0] = sky_look.grain, sky_look.blotch
    for i, prim in enumerate(layout.primitives, start=1):
        if prim.material in ("body", "body2"):
            look = style.look(prim.cls) if prim.cls < len(style.classes) else style.materials["clutter"]
        else:
            look = style.materials[prim.material]
        key = (prim.obj, prim.material)
        if key not in cache:
            cache[key] = _draw_color(look, rng)
        color[i] = cache[key]
        grain[i], blotch[i] = look.grain, look.blotch
        if look.pattern != "none":
            hp, vp = _PATTERNS[look.pattern]
            strengths = patterns.setdefault(look.pattern_period, np.zeros((n, 2), np.float32))
            strengths[i] = (hp * look.pattern_strength, vp * look.pattern_strength)
        shade[i] = prim.shade
        emissive[i] = prim.emissive
        emit[i] = LIT_WINDOW if prim.material == "window" else color[i]
        depth[i] = prim.depth
        ground[i] = prim.layer == GROUND
    bank = noise_bank(h, w)
    image = np.take(color * (1.0 - style.lighting.face_shading * shade)[:, None], objects, axis=0)
    texture = np.take(grain, objects) * window(bank.fine, h, w, rng)
    texture += np.take(blotch, objects) * window(bank.coarse, h, w, rng)
    for period, strengths in sorted(patterns.items()):
        pixels = period * w / 512.0
        texture += np.take(strengths[:, 0], objects) * stripes(h, pixels, float(rng.uniform(0, 50)))[:, None]
        texture += np.take(strengths[:, 1], objects) * stripes(w, pixels, float(rng.uniform(0, 50)))[None, :]
    image += texture[..., None]
    factor = None
    if style.lighting.sky_gradient > 0:
        rows = np.clip((np.arange(h, dtype=np.float32) - view.horizon) / max(view.horizon, 1.0) + 1.0, 0, 1.2)
        factor = np.where(objects == 0, 1.0 + style.lighting.sky_gradient * (rows[:, None] - 0.5), 1.0)
    on_ground = None
    shadow_mask = _mask(view, layout.shadows, h, w) if sunny else None
    for mask, strength in ((_mask(view, layout.contact, h, w), 0.45), (shadow_mask, shadow)):
        if mask is not None:
            on_ground = np.take(ground, objects) if on_ground is None else on_ground
            darken = 1.0 - strength * mask * on_ground
            factor = darken if factor is None else factor * darken
    if factor is not None:
        image *= factor.astype(np.float32)[..., None]
    return Canvas(objects, label, image, emissive, emit, depth, ground, shadow_mask)


def _mask(view: View, polys: list[np.ndarray], h: int, w: int) -> np.ndarray | None:
    if not polys:
        return None
    mask = np.zeros((h, w), np.uint8)
    for poly in fixed_point(view, [polys])[0]:
        cv2.fillPoly(mask, [poly], 1, cv2.LINE_8, shift=4)
    if not mask.any():
        return None
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(w / 400.0, 0.6))
