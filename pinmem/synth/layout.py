"""What is where in a scene: the geometry shared by every style.

:func:`build_layout` turns a camera spec, a layout spec (densities), an image size and a random generator into
a :class:`~pinmem.synth.primitives.Layout`: depth-sorted primitives with exact class ids. It never sees a
style's appearance, so two styles with the same camera and layout sections and the same generator give the
same label map. The rules: cars, trucks, buses and trams on the road (trams on rails), persons on sidewalks
and crossings, riders always on a bicycle or motorcycle, traffic lights and signs on poles, trees on sidewalks,
verges and in parks, buildings, walls, fences and hedges along the property lines, sky above.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pinmem.data.labels import IGNORE
from pinmem.synth.actors import BUS, CAR, TRAIN, TRUCK, add_crossing_car, add_person, add_rider, add_vehicle
from pinmem.synth.camera import sample_view
from pinmem.synth.furniture import add_clutter, add_pole, add_tree
from pinmem.synth.plan import Side, StreetPlan, draw_int, sample_plan
from pinmem.synth.primitives import EGO, FACADE, Layout, SceneBuilder
from pinmem.synth.street import add_blocks, add_ground
from pinmem.synth.style import CameraSpec, LayoutSpec


def build_layout(camera: CameraSpec, spec: LayoutSpec, size: tuple[int, int], rng: np.random.Generator) -> Layout:
    """One scene's geometry for an image of ``size`` = (width, height)."""
    plan = sample_plan(spec, rng)
    view = sample_view(camera, size, plan.cam_x, plan.curve, rng)
    b = SceneBuilder(view)
    add_ground(b, plan, rng)
    park_trees: list[tuple[float, float]] = []
    add_blocks(b, plan, spec, rng, park_trees)
    for x, z in park_trees:
        if z > 2.0 + view.cam_height:  # not right over a high camera
            add_tree(b, x, z, rng, layer=FACADE)
    _add_furniture(b, plan, spec, rng)
    _add_traffic(b, plan, spec, rng)
    _add_people(b, plan, spec, rng)
    if rng.random() < camera.bonnet_prob:
        _add_bonnet(b, float(rng.uniform(*camera.bonnet)), rng)
    return b.finish()


def _near_z(rng: np.random.Generator, lo: float, hi: float, power: float = 1.6) -> float:
    """A depth in [lo, hi], biased towards the near end."""
    return lo + (max(hi, lo + 1.0) - lo) * float(rng.random()) ** power


def _random_side(plan: StreetPlan, rng: np.random.Generator) -> Side:
    return plan.left if rng.random() < 0.5 else plan.right


def _walk_x(side: Side, rng: np.random.Generator, lo: float = 0.35, hi: float = 0.35) -> float:
    """A lateral position on the sidewalk (or the verge where there is none)."""
    inner, outer = side.walk_inner + lo, side.line - hi
    if side.sidewalk <= 0:
        inner, outer = side.road_edge + 0.3, side.line - 0.2
    return side.x(float(rng.uniform(inner, max(outer, inner + 0.01))))


def _add_furniture(b: SceneBuilder, plan: StreetPlan, spec: LayoutSpec, rng: np.random.Generator) -> None:
    far = min(plan.length - 2.0, 110.0)
    if plan.cross is not None and rng.random() < 0.85:  # traffic lights at the junction
        for side in plan.sides():
            if rng.random() < 0.8:
                x = side.x(side.walk_inner + 0.4 if side.sidewalk > 0 else side.road_edge + 0.6)
                add_pole(b, x, plan.cross[0] - 1.0, "light", -side.sign, side.sign > 0 or rng.random() < 0.5, rng)
    for _ in range(draw_int(rng, spec.poles)):
        side = _random_side(plan, rng)
        z = _near_z(rng, 3.0, far, 1.2)
        if plan.in_cross(z, 1.0):
            continue
        kind = ("lamp", "sign", "light")[int(np.searchsorted([0.45, 0.8], rng.random()))]
        x = side.x(side.walk_inner + 0.4 if side.sidewalk > 0 else side.road_edge + 0.6)
        facing = rng.random() < (0.85 if side.sign > 0 else 0.4)
        add_pole(b, x, z, kind, -side.sign, facing, rng)
    for _ in range(draw_int(rng, spec.trees)):
        side = _random_side(plan, rng)
        z = _near_z(rng, 4.0 + b.view.cam_height, far, 1.1)  # not right over a high camera
        if plan.in_cross(z, 2.0):
            continue
        if side.verge > 0.8:
            x = side.x(side.road_edge + side.verge / 2)
        else:
            x = side.x(side.walk_inner + float(rng.uniform(0.6, 1.2)))
        add_tree(b, x, z, rng)
    for _ in range(draw_int(rng, spec.clutter)):
        side = _random_side(plan, rng)
        z = _near_z(rng, 3.0, far)
        if not plan.in_cross(z, 0.5):
            add_clutter(b, _walk_x(side, rng, 0.3, 0.4), z, rng)


class _Lanes:
    """Occupied depth intervals per lane, so that vehicles do not overlap."""

    def __init__(self, lanes: int) -> None:
        self.busy: list[list[tuple[float, float]]] = [[] for _ in range(lanes)]

    def free(self, lane: int, z0: float, z1: float) -> bool:
        return all(z1 + 1.5 < a or z0 - 1.5 > b for a, b in self.busy[lane])

    def take(self, lane: int, z0: float, z1: float) -> None:
        self.busy[lane].append((z0, z1))


def _add_traffic(b: SceneBuilder, plan: StreetPlan, spec: LayoutSpec, rng: np.random.Generator) -> None:
    lanes = _Lanes(plan.lanes)
    far = min(plan.length - 5.0, 130.0)
    if plan.tram_lane is not None and rng.random() < 0.7:
        z0 = float(rng.uniform(9.0, max(far * 0.6, 12.0)))
        length = add_vehicle(b, TRAIN, plan.lane_x(plan.tram_lane), z0, plan.tram_lane < plan.oncoming, rng)
        lanes.take(plan.tram_lane, z0, z0 + length)
    for _ in range(draw_int(rng, spec.parked_cars)):
        lane = 0 if rng.random() < 0.5 else plan.lanes - 1
        z0 = _near_z(rng, 4.0, far, 1.2)
        if lane == plan.ego_lane or plan.in_cross(z0, 6.0) or not lanes.free(lane, z0, z0 + 5.0):
            continue
        edge = plan.half - 1.05
        x = -edge if lane == 0 else edge
        lanes.take(lane, z0, z0 + 5.0)
        add_vehicle(b, CAR, x, z0, lane < plan.oncoming, rng)
    kinds = [CAR] * draw_int(rng, spec.cars) + [TRUCK] * draw_int(rng, spec.trucks) + [BUS] * draw_int(rng, spec.buses)
    for cls in kinds:
        for _ in range(3):  # a few tries to find a free spot
            lane = int(rng.integers(0, plan.lanes))
            z0 = _near_z(rng, 8.0 if lane == plan.ego_lane else 4.0, far)
            length = {CAR: 5.0, TRUCK: 10.0, BUS: 13.0}[cls]
            if lanes.free(lane, z0, z0 + length):
                lanes.take(lane, z0, z0 + length)
                x = plan.lane_x(lane) + float(rng.uniform(-0.3, 0.3))
                add_vehicle(b, cls, x, z0, lane < plan.oncoming, rng)
                break
    if plan.cross is not None and rng.random() < 0.5:  # a car crossing the junction
        z0 = plan.cross[0] + float(rng.uniform(0.5, plan.cross[1] - plan.cross[0] - 2.5))
        add_crossing_car(b, float(rng.uniform(-plan.half - 15, plan.half + 8)), z0, rng)
    for _ in range(draw_int(rng, spec.riders)):
        motor = rng.random() < spec.motorcycle_share
        if plan.cross is not None and rng.random() < 0.25:  # crossing the junction, seen from the side
            z = float(rng.uniform(*plan.cross))
            add_rider(b, float(rng.uniform(-plan.half - 6, plan.half + 6)), z, motor, rng, side_view=True)
            continue
        lane = int(rng.integers(0, plan.lanes)) if motor else (0 if rng.random() < 0.3 else plan.lanes - 1)
        z = _near_z(rng, 9.0 if lane == plan.ego_lane else 5.0, far * 0.7)
        if not lanes.free(lane, z - 1.0, z + 1.0):
            continue
        lanes.take(lane, z - 1.0, z + 1.0)
        offset = 0.0 if motor else (plan.lane_width / 2 - 0.6) * (-1 if lane == 0 else 1)
        add_rider(b, plan.lane_x(lane) + offset + float(rng.uniform(-0.3, 0.3)), z, motor, rng, side_view=False)


def _add_people(b: SceneBuilder, plan: StreetPlan, spec: LayoutSpec, rng: np.random.Generator) -> None:
    far = min(plan.length - 3.0, 90.0)
    for _ in range(draw_int(rng, spec.persons)):
        if plan.cross is not None and rng.random() < 0.15:  # on the zebra crossing
            add_person(b, float(rng.uniform(-plan.half, plan.half)), plan.cross[0] - float(rng.uniform(1.2, 3.8)),
                       rng)
            continue
        side = _random_side(plan, rng)
        z = _near_z(rng, 4.0, far, 1.3)
        add_person(b, _walk_x(side, rng), z, rng)
        if rng.random() < 0.3:  # walking together
            add_person(b, _walk_x(side, rng), z + float(rng.uniform(0.3, 1.5)), rng)
    for _ in range(draw_int(rng, spec.parked_bikes)):
        side = _random_side(plan, rng)
        z = _near_z(rng, 4.0, far)
        add_rider(b, _walk_x(side, rng, 0.5, 0.6), z, rng.random() < 0.35, rng, ridden=False, side_view=True)


def _add_bonnet(b: SceneBuilder, fraction: float, rng: np.random.Generator) -> None:
    """The ego vehicle's bonnet at the bottom of the image: unlabeled (ignore), like the real datasets."""
    w, h = b.view.width, b.view.height
    xs = np.linspace(-0.1 * w, 1.1 * w, 17)
    bulge = float(rng.uniform(0.3, 0.8))
    ys = h * (1 - fraction) + fraction * h * bulge * ((xs / w - 0.5) * 2) ** 2
    poly = np.concatenate([np.stack([xs, ys], axis=1), [[1.1 * w, 2 * h], [-0.1 * w, 2 * h]]])
    # the bonnet is fixed to the camera: undo the roll that painting applies to everything
    if b.view.roll:
        poly = _unroll(b, poly)
    obj = b.new_object()
    b.add(poly, IGNORE, "ego", obj, 0.0, EGO, 0.0)


def _unroll(b: SceneBuilder, poly: np.ndarray) -> np.ndarray:
    return replace(b.view, roll=-b.view.roll).apply_roll(poly)
