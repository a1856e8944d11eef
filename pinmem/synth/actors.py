"""Traffic and people: cars, trucks, buses, trams, persons, and riders on bicycles and motorcycles.

Vehicles are boxes (body, cabin, cargo) with glass, wheels and lights; people are outlines scaled by distance.
A rider is always drawn on top of its bicycle or motorcycle (rider class over the vehicle class).
"""

from __future__ import annotations

import numpy as np

from pinmem.synth.furniture import ground_ellipse
from pinmem.synth.primitives import OBJECT, SceneBuilder
from pinmem.synth.shapes import FRONT, SIDE, bar, box, ellipse, front_face, local, ring, side_face, wheel_on_side

PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 11, 12, 13, 14, 15, 16, 17, 18
LENGTHS = {CAR: (3.9, 4.9), TRUCK: (7.0, 10.0), BUS: (10.5, 13.0), TRAIN: (24.0, 40.0)}


def _visible_side_x(b: SceneBuilder, x0: float, x1: float, z: float) -> float | None:
    lat0, lat1 = float(b.view.lateral(x0, z)), float(b.view.lateral(x1, z))
    return x0 if lat0 > 0 else (x1 if lat1 < 0 else None)


def _add_box(b: SceneBuilder, cls: int, obj: int, depth: float, x0, x1, y0, y1, z0, z1,
             material: str = "body") -> None:
    for poly, shade in box(b.view, x0, x1, y0, y1, z0, z1):
        b.add(poly, cls, material, obj, depth, OBJECT, shade)


def _wheels(b: SceneBuilder, cls: int, obj: int, depth: float, x0: float, x1: float, z0: float,
            radius: float) -> None:
    """The wheels showing under the near face, painted before the body."""
    polys = [front_face(b.view, x0 + 0.05, x0 + 0.32, 0.0, radius, z0 + 0.3),
             front_face(b.view, x1 - 0.32, x1 - 0.05, 0.0, radius, z0 + 0.3)]
    b.add(polys, cls, "tyre", obj, depth, OBJECT, FRONT, evenodd=True)


def add_vehicle(b: SceneBuilder, cls: int, x: float, z0: float, oncoming: bool, rng: np.random.Generator) -> float:
    """A car, truck, bus or tram centred on lane position ``x`` whose near end is at ``z0``; returns its length."""
    length = float(rng.uniform(*LENGTHS[cls]))
    view, obj = b.view, b.new_object()
    width = {CAR: float(rng.uniform(1.7, 1.95)), TRUCK: 2.45, BUS: 2.55, TRAIN: 2.65}[cls]
    x0, x1, z1 = x - width / 2, x + width / 2, z0 + length
    b.contact.append(ground_ellipse(view, x, z0 + length / 2, width * 0.62, length * 0.55))
    b.shadows.append(ground_ellipse(view, x + width * 0.7, z0 + length / 2, width * 0.6, length * 0.5))
    side = _visible_side_x(b, x0, x1, z0)
    if cls == CAR:
        van = rng.random() < 0.2
        body_top = float(rng.uniform(0.9, 1.1)) + (0.5 if van else 0.0)
        roof = body_top + float(rng.uniform(0.4, 0.55))
        _wheels(b, CAR, obj, z0, x0, x1, z0, 0.33)
        _add_box(b, CAR, obj, z0, x0, x1, 0.28, body_top, z0, z1)
        _wheels_over(b, CAR, obj, z0, side, z0, length, 0.33, (0.18, 0.82))
        c0, c1 = (z0 + 0.25 * length, z0 + 0.72 * length) if not oncoming else (z0 + 0.3 * length, z0 + 0.8 * length)
        if van:
            c0, c1 = z0 + 0.08 * length, z0 + 0.85 * length
        inset = 0.1
        _add_box(b, CAR, obj, z0, x0 + inset, x1 - inset, body_top, roof, c0, c1)
        glass = [front_face(view, x0 + inset + 0.08, x1 - inset - 0.08, body_top + 0.05, roof - 0.07, c0)]
        if side is not None:
            sx = side + (inset if side == x0 else -inset)
            glass.append(side_face(view, sx, body_top + 0.06, roof - 0.07, c0 + 0.15, c1 - 0.15, 3))
        b.add(glass, CAR, "glass", obj, z0, OBJECT, FRONT)
        _lights(b, CAR, obj, z0, x0, x1, body_top - 0.3, body_top - 0.12, oncoming)
    elif cls == TRUCK:
        cab_len, box_top = float(rng.uniform(1.8, 2.4)), float(rng.uniform(3.2, 3.9))
        cab_top = float(rng.uniform(2.6, 3.0))
        _wheels(b, TRUCK, obj, z0, x0, x1, z0, 0.5)
        cab0, cargo0 = (z0, z0 + cab_len + 0.3) if oncoming else (z1 - cab_len, z0)
        cargo1 = (z1 if oncoming else z1 - cab_len - 0.3)
        _add_box(b, TRUCK, obj, z0, x0, x1, 0.5, box_top, cargo0, cargo1, "body2")
        _add_box(b, TRUCK, obj, z0, x0 + 0.05, x1 - 0.05, 0.5, cab_top, cab0, cab0 + cab_len)
        _wheels_over(b, TRUCK, obj, z0, side, z0, length, 0.5, (0.12, 0.7, 0.85))
        if oncoming:
            b.add(front_face(view, x0 + 0.2, x1 - 0.2, cab_top - 1.0, cab_top - 0.15, z0), TRUCK, "glass", obj, z0,
                  OBJECT, FRONT)
        _lights(b, TRUCK, obj, z0, x0, x1, 0.7, 0.95, oncoming)
    else:  # bus or tram: a long box with a band of windows
        y0, top = (0.3, float(rng.uniform(3.0, 3.3))) if cls == BUS else (0.45, float(rng.uniform(3.3, 3.7)))
        if cls == BUS:
            _wheels(b, BUS, obj, z0, x0, x1, z0, 0.5)
        _add_box(b, cls, obj, z0, x0, x1, y0, top, z0, z1)
        if cls == BUS:
            _wheels_over(b, BUS, obj, z0, side, z0, length, 0.5, (0.18, 0.8))
        glass = [front_face(view, x0 + 0.15, x1 - 0.15, 1.2, top - 0.35, z0)]
        if side is not None:
            glass.append(side_face(view, side, 1.25, top - 0.45, z0 + 0.6, z1 - 0.6, 6))
        b.add(glass, cls, "glass", obj, z0, OBJECT, FRONT)
        if cls == TRAIN:  # a stripe below the windows and a pantograph
            if side is not None:
                b.add(side_face(view, side, 0.85, 1.05, z0, z1, 6), TRAIN, "body2", obj, z0, OBJECT, SIDE)
            b.add(front_face(view, x - 0.5, x + 0.5, top, top + 0.35, z0 + 4.0), TRAIN, "metal", obj, z0, OBJECT)
        _lights(b, cls, obj, z0, x0, x1, y0 + 0.35, y0 + 0.6, oncoming)
    return length


def _wheels_over(b: SceneBuilder, cls: int, obj: int, depth: float, side: float | None, z0: float, length: float,
                 radius: float, axles: tuple[float, ...]) -> None:
    """The wheels on the visible side face, painted over the body."""
    if side is None:
        return
    polys = [wheel_on_side(b.view, side, z0 + a * length, radius) for a in axles]
    b.add(polys, cls, "tyre", obj, depth, OBJECT, SIDE, evenodd=True)


def _lights(b: SceneBuilder, cls: int, obj: int, z: float, x0: float, x1: float, y0: float, y1: float,
            oncoming: bool) -> None:
    material = "headlight" if oncoming else "taillight"
    polys = [front_face(b.view, x0 + 0.1, x0 + 0.35, y0, y1, z), front_face(b.view, x1 - 0.35, x1 - 0.1, y0, y1, z)]
    b.add(polys, cls, material, obj, z, OBJECT, FRONT, emissive=True, evenodd=True)


# -- people ---------------------------------------------------------------------------------------------------
def add_person(b: SceneBuilder, x: float, z: float, rng: np.random.Generator, cls: int = PERSON) -> None:
    """A standing or walking person at (``x``, ``z``), seen from the front, back or side."""
    view, obj = b.view, b.new_object()
    height = float(rng.uniform(1.5, 1.95))
    foot = view.project(x, 0.0, z)[0]
    s = view.scale(z) * height
    mirror = rng.random() < 0.5
    side_view = rng.random() < 0.45
    stride = float(rng.uniform(0.0, 0.14))
    tw = 0.075 if side_view else float(rng.uniform(0.12, 0.16))
    legs = [bar(foot, s, (-0.055 * (not side_view), 0.5), (-stride - 0.06 * (not side_view), 0.02), 0.085, mirror),
            bar(foot, s, (0.055 * (not side_view), 0.5), (stride + 0.06 * (not side_view), 0.02), 0.085, mirror)]
    torso = local(foot, s, [(-tw, 0.47), (tw, 0.47), (tw + 0.02, 0.8), (-tw - 0.01, 0.81)], mirror)
    swing = float(rng.uniform(-0.08, 0.08))
    arms = [bar(foot, s, (-tw - 0.015, 0.79), (-tw - 0.03 + swing, 0.45), 0.055, mirror),
            bar(foot, s, (tw + 0.015, 0.79), (tw + 0.03 - swing, 0.45), 0.055, mirror)]
    if side_view:
        arms = [bar(foot, s, (0.0, 0.79), (swing * 2, 0.46), 0.06, mirror)]
    head = ellipse(local(foot, s, [(0.01 * side_view, 0.9)], mirror)[0], 0.06 * s, 0.075 * s, 12)
    b.contact.append(ground_ellipse(view, x, z, 0.35, 0.3))
    for poly in legs:
        b.add(poly, cls, "body2", obj, z, OBJECT, SIDE * 0.3)
    b.add(torso, cls, "body", obj, z, OBJECT)
    for poly in arms:
        b.add(poly, cls, "body", obj, z, OBJECT, SIDE * 0.2)
    b.add(head, cls, "skin", obj, z, OBJECT)
    if rng.random() < 0.2:  # a bag or a backpack
        bag = local(foot, s, [(tw, 0.5), (tw + 0.08, 0.5), (tw + 0.08, 0.68), (tw, 0.68)], mirror)
        b.add(bag, cls, "body2", obj, z, OBJECT, SIDE)


def add_rider(b: SceneBuilder, x: float, z: float, motor: bool, rng: np.random.Generator, ridden: bool = True,
              side_view: bool | None = None) -> None:
    """A bicycle or motorcycle at (``x``, ``z``), with its rider on top when ``ridden``."""
    view = b.view
    foot = view.project(x, 0.0, z)[0]
    s = view.scale(z)
    side_view = rng.random() < 0.4 if side_view is None else side_view
    mirror = rng.random() < 0.5
    bike_cls = MOTORCYCLE if motor else BICYCLE
    bike = b.new_object()
    b.contact.append(ground_ellipse(view, x, z, 0.4, 0.9))
    if side_view:
        _bike_side(b, foot, s, z, bike, bike_cls, motor, mirror)
    else:
        _bike_rear(b, foot, s, z, bike, bike_cls, motor)
    if not ridden:
        return
    rider = b.new_object()
    seat = 0.95 if motor else 0.92
    if side_view:
        hip, shoulder = (-0.2, seat), (0.08 if motor else 0.14, seat + 0.55)
        parts = [bar(foot, s, hip, shoulder, 0.3, mirror)]
        legs = [bar(foot, s, hip, (0.2, 0.7), 0.15, mirror), bar(foot, s, (0.2, 0.7), (0.08, 0.18), 0.12, mirror)]
        arms = [bar(foot, s, shoulder, (0.45 if motor else 0.34, 1.0), 0.09, mirror)]
        head_c = local(foot, s, [(shoulder[0] + 0.06, seat + 0.77)], mirror)[0]
    else:
        parts = [local(foot, s, [(-0.19, seat), (0.19, seat), (0.21, seat + 0.55), (-0.21, seat + 0.55)])]
        legs = [bar(foot, s, (-0.12, seat + 0.02), (-0.15, 0.3), 0.13), bar(foot, s, (0.12, seat + 0.02),
                                                                            (0.15, 0.45), 0.13)]
        arms = [bar(foot, s, (-0.2, seat + 0.5), (-0.3, 1.02), 0.09), bar(foot, s, (0.2, seat + 0.5), (0.3, 1.02),
                                                                           0.09)]
        head_c = local(foot, s, [(0.0, seat + 0.72)])[0]
    for poly in legs:
        b.add(poly, RIDER, "body2", rider, z, OBJECT, SIDE * 0.3)
    for poly in parts + arms:
        b.add(poly, RIDER, "body", rider, z, OBJECT)
    head_material = "body2" if motor else ("skin" if rng.random() < 0.6 else "body2")  # helmets
    b.add(ellipse(head_c, 0.12 * s, 0.14 * s, 12), RIDER, head_material, rider, z, OBJECT)


def _bike_side(b: SceneBuilder, foot: np.ndarray, s: float, z: float, obj: int, cls: int, motor: bool,
               mirror: bool) -> None:
    r = 0.32 if motor else 0.34
    hubs = [local(foot, s, [(-0.62 if motor else -0.52, r)], mirror)[0], local(foot, s, [(0.62 if motor else 0.52, r)],
                                                                              mirror)[0]]
    if motor:
        for hub in hubs:
            b.add(ellipse(hub, r * s, r * s, 14), cls, "tyre", obj, z, OBJECT)
            b.add(ellipse(hub, 0.13 * s, 0.13 * s, 10), cls, "metal", obj, z, OBJECT)
        body = local(foot, s, [(-0.8, 0.5), (-0.55, 0.8), (-0.1, 0.88), (0.3, 0.98), (0.55, 0.92), (0.64, 0.62),
                               (0.3, 0.42), (-0.35, 0.38)], mirror)
        b.add(body, cls, "body", obj, z, OBJECT)
        b.add(bar(foot, s, (0.55, 0.95), (0.62, r), 0.06, mirror), cls, "metal", obj, z, OBJECT)
        return
    for hub in hubs:
        b.add(ring(hub, r * s, (r - 0.05) * s), cls, "tyre", obj, z, OBJECT, evenodd=True)
    frame = [((-0.52, r), (-0.18, 0.86)), ((-0.18, 0.86), (0.0, 0.3)), ((0.0, 0.3), (-0.52, r)),
             ((-0.16, 0.8), (0.38, 0.86)), ((0.0, 0.3), (0.4, 0.78)), ((0.38, 0.95), (0.52, r)),
             ((-0.25, 0.88), (-0.1, 0.88)), ((0.3, 1.0), (0.42, 1.0))]
    b.add([bar(foot, s, a, c, 0.045, mirror) for a, c in frame], cls, "body", obj, z, OBJECT)


def _bike_rear(b: SceneBuilder, foot: np.ndarray, s: float, z: float, obj: int, cls: int, motor: bool) -> None:
    b.add(bar(foot, s, (0.0, 0.0), (0.0, 0.62 if motor else 0.68), 0.14 if motor else 0.05), cls, "tyre", obj, z,
          OBJECT)
    if motor:
        b.add(local(foot, s, [(-0.24, 0.38), (0.24, 0.38), (0.3, 0.9), (-0.3, 0.9)]), cls, "body", obj, z, OBJECT)
        b.add(local(foot, s, [(-0.08, 0.6), (0.08, 0.6), (0.08, 0.68), (-0.08, 0.68)]), cls, "taillight", obj, z,
              OBJECT, emissive=True)
    else:
        b.add(bar(foot, s, (0.0, 0.5), (0.0, 0.95), 0.06), cls, "body", obj, z, OBJECT)
    b.add(bar(foot, s, (-0.32, 1.02), (0.32, 1.02), 0.04), cls, "metal" if motor else "body", obj, z, OBJECT)


def add_crossing_car(b: SceneBuilder, x0: float, z0: float, rng: np.random.Generator) -> float:
    """A car driving across the junction, seen from the side; ``x0`` is its left end. Returns its length."""
    view, obj = b.view, b.new_object()
    length, width = float(rng.uniform(*LENGTHS[CAR])), float(rng.uniform(1.7, 1.95))
    x1, z1 = x0 + length, z0 + width
    body_top = float(rng.uniform(0.9, 1.1))
    roof = body_top + float(rng.uniform(0.4, 0.55))
    b.contact.append(ground_ellipse(view, x0 + length / 2, z0 + width / 2, length * 0.55, width * 0.6))
    _add_box(b, CAR, obj, z0, x0, x1, 0.28, body_top, z0, z1)
    c0, c1 = x0 + float(rng.uniform(0.2, 0.3)) * length, x0 + float(rng.uniform(0.7, 0.78)) * length
    _add_box(b, CAR, obj, z0, c0, c1, body_top, roof, z0 + 0.1, z1 - 0.1)
    b.add(front_face(view, c0 + 0.15, c1 - 0.15, body_top + 0.06, roof - 0.07, z0 + 0.1), CAR, "glass", obj, z0,
          OBJECT, FRONT)
    s = view.scale(z0)
    wheels = [ellipse(view.project(x0 + a * length, 0.33, z0)[0], 0.33 * s, 0.33 * s, 14) for a in (0.18, 0.82)]
    b.add(wheels, CAR, "tyre", obj, z0, OBJECT, FRONT, evenodd=True)
    return length
