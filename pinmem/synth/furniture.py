"""Street furniture: poles carrying lamps, traffic lights and signs; trees; unlabeled clutter.

Traffic lights and signs only ever appear on poles or on a mast arm over the road; trees stand on sidewalks,
verges and in parks; clutter (bins, bollards, boxes, benches) is unlabeled (ignore) as in the real datasets.
"""

from __future__ import annotations

import math

import numpy as np

from pinmem.data.labels import IGNORE
from pinmem.synth.camera import View
from pinmem.synth.primitives import OBJECT, SceneBuilder
from pinmem.synth.shapes import FRONT, box, ellipse, front_face

POLE, LIGHT, SIGN, VEGETATION = 5, 6, 7, 8
SIGN_SHAPES = ("circle", "triangle", "yield", "square", "rect", "octagon", "diamond")


def add_pole(b: SceneBuilder, x: float, z: float, kind: str, toward_road: int, facing: bool,
             rng: np.random.Generator, layer: int = OBJECT) -> None:
    """A pole at (``x``, ``z``) carrying a street ``lamp``, a traffic ``light`` or ``sign``s.

    ``toward_road`` is +1/-1: the direction in x from the pole to the road. ``facing``: lights and signs
    face the camera (else their backs show).
    """
    view, obj = b.view, b.new_object()
    if kind == "lamp":
        height, width = float(rng.uniform(6.0, 9.5)), float(rng.uniform(0.16, 0.26))
    elif kind == "light":
        height, width = float(rng.uniform(2.8, 4.2)), float(rng.uniform(0.12, 0.2))
    else:
        height, width = float(rng.uniform(2.2, 3.4)), float(rng.uniform(0.06, 0.12))
    b.add(front_face(view, x - width / 2, x + width / 2, 0.0, height, z), POLE, "body", obj, z, layer, FRONT)
    if kind == "lamp":
        reach = float(rng.uniform(1.0, 2.5))
        arm = front_face(view, *sorted((x, x + toward_road * reach)), height - 0.12, height, z)
        head_x = x + toward_road * reach
        head = front_face(view, head_x - 0.35, head_x + 0.35, height - 0.3, height - 0.05, z)
        b.add([arm, head], POLE, "body", obj, z, layer, FRONT)
        return
    if kind == "light":
        add_traffic_light(b, x, height - 0.05, z, facing, rng, layer)
        if rng.random() < 0.35:
            add_sign(b, x, height - 1.6, z, facing, rng, layer)
        if rng.random() < 0.4:  # a mast arm over the road with a second light
            reach = float(rng.uniform(3.0, 6.0))
            y = height + float(rng.uniform(1.2, 2.2))
            b.add(front_face(view, x - width / 2, x + width / 2, height - 0.1, y, z), POLE, "body", obj, z, layer)
            b.add(front_face(view, *sorted((x, x + toward_road * reach)), y - 0.15, y, z), POLE, "body", obj, z,
                  layer, FRONT)
            add_traffic_light(b, x + toward_road * reach * 0.85, y - 0.1, z, facing, rng, layer, hanging=True)
        return
    add_sign(b, x, height, z, facing, rng, layer)
    if rng.random() < 0.35:
        add_sign(b, x, height - 0.85, z, facing, rng, layer)


def add_traffic_light(b: SceneBuilder, x: float, top: float, z: float, facing: bool, rng: np.random.Generator,
                      layer: int = OBJECT, hanging: bool = False) -> None:
    """A three-lamp traffic light whose top is at height ``top``; one lamp lit when facing the camera."""
    view, obj = b.view, b.new_object()
    w, h = 0.36, float(rng.uniform(0.85, 1.05))
    b.add(front_face(view, x - w / 2, x + w / 2, top - h, top, z), LIGHT, "body", obj, z, layer, FRONT)
    if not facing:
        return
    lit = int(rng.integers(0, 3))
    scale = view.scale(z)
    for i, name in enumerate(("lamp_red", "lamp_amber", "lamp_green")):
        centre = view.project(x, top - h * (i + 0.5) / 3, z)[0]
        radius = 0.11 * scale
        material = name if i == lit else "lamp_off"
        b.add(ellipse(centre, radius, radius, 10), LIGHT, material, obj, z, layer, FRONT, emissive=i == lit)
    if hanging and rng.random() < 0.5:  # a back plate
        b.add(front_face(view, x - w * 0.8, x - w / 2, top - h, top, z), LIGHT, "body2", obj, z, layer)


def sign_outline(shape: str, size: float) -> np.ndarray:
    """Sign outline in metres around its centre (x right, y up)."""
    r = size / 2
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "octagon":
        t = np.linspace(0, 2 * math.pi, 8, endpoint=False) + math.pi / 8
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "triangle":
        return np.array([[-r, -0.8 * r], [r, -0.8 * r], [0, r]])
    if shape == "yield":
        return np.array([[-r, 0.8 * r], [r, 0.8 * r], [0, -r]])
    if shape == "diamond":
        return np.array([[0, r], [r, 0], [0, -r], [-r, 0]])
    if shape == "rect":
        return np.array([[-1.4 * r, -0.6 * r], [1.4 * r, -0.6 * r], [1.4 * r, 0.6 * r], [-1.4 * r, 0.6 * r]])
    return np.array([[-r, -r], [r, -r], [r, r], [-r, r]])


def add_sign(b: SceneBuilder, x: float, top: float, z: float, facing: bool, rng: np.random.Generator,
             layer: int = OBJECT) -> None:
    """A traffic sign hanging from height ``top`` on the pole at ``x``: a white border and a coloured face."""
    view, obj = b.view, b.new_object()
    shape = SIGN_SHAPES[int(rng.integers(0, len(SIGN_SHAPES)))]
    size = float(rng.uniform(0.55, 0.9))
    outline = sign_outline(shape, size)
    centre_y = top - (outline[:, 1].max())
    pts = view.project(x + outline[:, 0], centre_y + outline[:, 1], np.full(len(outline), z))
    if not facing:
        b.add(pts, SIGN, "sign_back", obj, z, layer, FRONT)
        return
    b.add(pts, SIGN, "sign_border", obj, z, layer, FRONT)
    inner = view.project(x + 0.8 * outline[:, 0], centre_y + 0.8 * outline[:, 1], np.full(len(outline), z))
    b.add(inner, SIGN, "body", obj, z, layer, FRONT)


def add_tree(b: SceneBuilder, x: float, z: float, rng: np.random.Generator, layer: int = OBJECT) -> None:
    """A tree: a trunk and a canopy of overlapping blobs (all vegetation), and its shadow on the ground."""
    view, obj = b.view, b.new_object()
    trunk_h = float(rng.uniform(1.8, 3.5))
    radius = float(rng.uniform(1.4, 3.4))
    tw = float(rng.uniform(0.18, 0.4))
    b.add(front_face(view, x - tw / 2, x + tw / 2, 0.0, trunk_h + radius * 0.6, z), VEGETATION, "trunk", obj, z,
          layer, FRONT)
    scale = view.scale(z)
    conifer = rng.random() < 0.15
    if conifer:
        top = trunk_h + 4 * radius
        pts = view.project(np.array([x - radius, x + radius, x]), np.array([trunk_h, trunk_h, top]), z)
        b.add(pts, VEGETATION, "body", obj, z, layer, FRONT)
    else:
        cy = trunk_h + radius
        for _ in range(int(rng.integers(4, 8))):
            dx, dy = rng.normal(0, radius * 0.45), rng.normal(0, radius * 0.3)
            r = radius * float(rng.uniform(0.5, 0.85))
            centre = view.project(x + dx, cy + dy, z)[0]
            b.add(ellipse(centre, r * scale, r * scale * float(rng.uniform(0.8, 1.1)), 14), VEGETATION, "body",
                  obj, z, layer, float(np.clip(-dy / radius, -0.5, 0.5)))
    b.shadows.append(ground_ellipse(view, x + 1.0, z + 0.5, radius, radius * 0.7))


def add_clutter(b: SceneBuilder, x: float, z: float, rng: np.random.Generator) -> None:
    """An unlabeled street object (ignore): a bin, a bollard, a utility box or a bench."""
    kind = int(rng.integers(0, 4))
    w, h, d = ((0.55, 1.0, 0.5), (0.16, 0.9, 0.16), (0.7, 1.3, 0.4), (1.6, 0.8, 0.5))[kind]
    obj = b.new_object()
    for poly, shade in box(b.view, x - w / 2, x + w / 2, 0.0, h, z, z + d):
        b.add(poly, IGNORE, "clutter", obj, z, OBJECT, shade)


def ground_ellipse(view: View, x: float, z: float, rx: float, rz: float) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    return view.project(x + rx * np.cos(t), 0.0, z + rz * np.sin(t))
