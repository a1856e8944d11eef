"""The static street: ground (road, marks, sidewalks, terrain), building blocks, parks, walls, fences, hedges and
the backdrop that closes the street. Shared by every style: only the plan's numbers come from the style's
layout densities.
"""

from __future__ import annotations

import numpy as np

from pinmem.synth.plan import Side, StreetPlan
from pinmem.synth.primitives import BACKDROP, BOUNDARY, FACADE, GROUND, SceneBuilder
from pinmem.synth.shapes import FRONT, SIDE, box, ellipse, front_face, ground_strip, side_face
from pinmem.synth.style import LayoutSpec

ROAD, SIDEWALK, BUILDING, WALL, FENCE, VEGETATION, TERRAIN = 0, 1, 2, 3, 4, 8, 9
NEAR = 0.6  # metres: ground starts here (below the image's bottom edge)
FAR_X = 400.0  # metres: lateral extent of cross streets and parks


def add_ground(b: SceneBuilder, plan: StreetPlan, rng: np.random.Generator) -> None:
    """Terrain everywhere below the horizon, then verges, sidewalks, the road and its markings."""
    view, end = b.view, plan.length + 40.0
    w, h, hz = view.width, view.height, view.horizon
    base = np.array([[-3 * w, hz], [4 * w, hz], [4 * w, 4 * h], [-3 * w, 4 * h]], dtype=np.float64)
    terrain = b.new_object()
    b.add(base, TERRAIN, "body", terrain, 0.0, GROUND)
    for side in plan.sides():
        if side.verge > 0:
            b.add(ground_strip(view, side.x(side.road_edge), side.x(side.walk_inner), NEAR, end), TERRAIN,
                  "body2", terrain, 0.0, GROUND)
    walk = b.new_object()
    for side in plan.sides():
        if side.sidewalk > 0:
            spans = _spans_outside_cross(plan, NEAR, end)
            polys = [ground_strip(view, side.x(side.walk_inner), side.x(side.line), z0, z1) for z0, z1 in spans]
            b.add(polys, SIDEWALK, "body", walk, 0.0, GROUND)
            curb = [ground_strip(view, side.x(side.walk_inner), side.x(side.walk_inner + 0.25), z0, z1)
                    for z0, z1 in spans]
            b.add(curb, SIDEWALK, "curb", walk, 0.0, GROUND)
    road = b.new_object()
    b.add(ground_strip(view, -plan.half - 0.05, plan.half + 0.05, NEAR, end), ROAD, "body", road, 0.0, GROUND)
    if plan.cross is not None:
        z0, z1 = plan.cross
        for side in plan.sides():
            b.add(ground_strip(view, side.x(plan.half), side.x(FAR_X), z0, z1, 4), ROAD, "body", road, 0.0, GROUND)
    _add_marks(b, plan, road, rng)


def ground_quads(view, x0, x1, z0, z1) -> np.ndarray:
    """Many small ground rectangles at once (lane dashes, zebra stripes): (n, 4, 2) pixel corners."""
    x0, x1, z0, z1 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x0, x1, z0, z1)))
    corners = [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]
    return np.stack([view.project(cx, 0.0, cz) for cx, cz in corners], axis=1)


def _spans_outside_cross(plan: StreetPlan, z0: float, z1: float) -> list[tuple[float, float]]:
    if plan.cross is None:
        return [(z0, z1)]
    return [(z0, plan.cross[0]), (plan.cross[1], z1)]


def _add_marks(b: SceneBuilder, plan: StreetPlan, road: int, rng: np.random.Generator) -> None:
    view = b.view
    marks: list[np.ndarray] = []
    end = plan.length
    spans = _spans_outside_cross(plan, NEAR, end)
    dash, gap = float(rng.uniform(2.0, 4.0)), float(rng.uniform(4.0, 9.0))
    phase = float(rng.uniform(0, dash + gap))
    for lane in range(1, plan.lanes):
        x = -plan.half + lane * plan.lane_width
        if lane == plan.oncoming:  # the centre line: solid, sometimes doubled
            offsets = (-0.12, 0.12) if rng.random() < 0.5 else (0.0,)
            for dx in offsets:
                marks += [ground_strip(view, x + dx - 0.07, x + dx + 0.07, z0, z1) for z0, z1 in spans]
            continue
        starts = np.arange(NEAR - phase, end, dash + gap)
        starts = np.array([z for z in starts if z + dash > NEAR and not plan.in_cross(z, 1.0)])
        marks += list(ground_quads(view, x - 0.07, x + 0.07, np.maximum(starts, NEAR), starts + dash))
    if rng.random() < 0.7:  # edge lines
        for sign in (-1, 1):
            x = sign * (plan.half - 0.25)
            marks += [ground_strip(view, x - 0.07, x + 0.07, z0, z1) for z0, z1 in spans]
    if plan.cross is not None and rng.random() < 0.8:  # zebra crossing and stop line before the junction
        z0 = plan.cross[0] - 4.0
        xs = np.arange(-plan.half + 0.3, plan.half - 0.3, 1.0)
        marks += list(ground_quads(view, xs, xs + 0.5, np.full(len(xs), z0), np.full(len(xs), z0 + 3.0)))
        x0 = plan.lane_x(plan.oncoming) - 0.5 * plan.lane_width if plan.oncoming < plan.lanes else 0.0
        marks.append(ground_strip(view, x0, plan.half - 0.2, z0 - 1.2, z0 - 0.8, 2))
    b.add(marks, ROAD, "mark", road, 0.0, GROUND)
    if plan.tram_lane is not None:
        x = plan.lane_x(plan.tram_lane)
        rails = [ground_strip(view, x + dx - 0.05, x + dx + 0.05, NEAR, end + 40) for dx in (-0.72, 0.72)]
        b.add(rails, ROAD, "rail", road, 0.0, GROUND)


def add_blocks(b: SceneBuilder, plan: StreetPlan, spec: LayoutSpec, rng: np.random.Generator,
               park_trees: list[tuple[float, float]]) -> None:
    """Building blocks and parks along both sides, boundaries at the property line, the closing backdrop.

    Park tree positions (x, z) are appended to ``park_trees`` for the furniture pass to plant.
    """
    for side in plan.sides():
        z = float(rng.uniform(-6.0, 2.0))
        while z < plan.length - 4:
            if plan.in_cross(z + 0.5):
                z = plan.cross[1]
                continue
            length = float(rng.uniform(8.0, 32.0))
            z1 = min(z + length, plan.length)
            if plan.cross is not None and z < plan.cross[0] < z1:
                z1 = plan.cross[0]
            if rng.random() < spec.building_prob:
                setback = 0.0 if rng.random() < 0.6 else float(rng.uniform(1.0, 5.0))
                _add_building(b, side, side.line + setback, max(z, 0.6), z1, rng)
                if setback > 0:
                    _setback_ground(b, side, setback, max(z, 0.6), z1, rng)
                    _add_boundary(b, side, max(z, 0.6), z1, spec, rng, always=True)
            else:
                _setback_ground(b, side, 40.0, max(z, 0.6), z1, rng, grass=True)
                _add_boundary(b, side, max(z, 0.6), z1, spec, rng)
                for _ in range(int(rng.integers(1, 5))):
                    park_trees.append((side.x(side.line + float(rng.uniform(2.0, 14.0))),
                                       float(rng.uniform(max(z, 3.0), z1 + 1.0))))
            z = z1 + (float(rng.uniform(0.5, 6.0)) if rng.random() < 0.25 else 0.0)
    _add_backdrop(b, plan, rng)


def _setback_ground(b: SceneBuilder, side: Side, depth: float, z0: float, z1: float, rng: np.random.Generator,
                    grass: bool = False) -> None:
    cls = TERRAIN if grass or rng.random() < 0.5 else SIDEWALK
    b.add(ground_strip(b.view, side.x(side.line), side.x(side.line + depth), z0, z1, 6), cls, "body",
          b.new_object(), 0.0, GROUND)


def _add_building(b: SceneBuilder, side: Side, face_x: float, z0: float, z1: float,
                  rng: np.random.Generator) -> None:
    view, obj = b.view, b.new_object()
    height = float(rng.uniform(6.0, 26.0))
    x_in, x_out = side.x(face_x), side.x(face_x + float(rng.uniform(10.0, 20.0)))
    lo, hi = min(x_in, x_out), max(x_in, x_out)
    for poly, shade in box(view, lo, hi, 0.0, height, z0, z1, n=10):
        b.add(poly, BUILDING, "body", obj, z0, FACADE, shade)
    floor = float(rng.uniform(2.9, 3.6))
    spacing = float(rng.uniform(2.2, 4.0))
    win_w, win_h = spacing * float(rng.uniform(0.35, 0.65)), floor * float(rng.uniform(0.35, 0.6))
    ys = np.arange(floor * 0.9, height - 1.0, floor)
    zs = np.arange(z0 + 0.8, z1 - win_w - 0.5, spacing)
    _windows_on_side(b, obj, x_in, ys, zs, win_w, win_h, z0, rng)
    # the front face shows when the block before it is set back or absent
    if z0 > 1.0:
        xs = np.arange(min(abs(x_in), abs(x_out)) + 1.0, max(abs(x_in), abs(x_out)) - win_w, spacing)
        _windows_on_front(b, obj, side.sign * xs, ys, z0, win_w, win_h, rng)
    if rng.random() < 0.35:  # a shop front or a band at the top
        y0, y1 = (0.3, float(rng.uniform(2.4, 3.2))) if rng.random() < 0.6 else (height - 0.8, height)
        b.add(side_face(view, x_in, y0, y1, z0 + 0.5, z1 - 0.5), BUILDING, "body2", obj, z0, FACADE, SIDE)


def _windows_on_side(b: SceneBuilder, obj: int, x: float, ys: np.ndarray, zs: np.ndarray, w: float, h: float,
                     depth: float, rng: np.random.Generator) -> None:
    if not len(ys) or not len(zs):
        return
    yy, zz = np.meshgrid(ys, zs, indexing="ij")
    yy, zz = yy.ravel(), zz.ravel()
    corners = [(yy, zz), (yy, zz + w), (yy + h, zz + w), (yy + h, zz)]
    pts = np.stack([b.view.project(x, cy, cz) for cy, cz in corners], axis=1)  # (n, 4, 2)
    _add_window_sets(b, obj, pts, depth, rng)


def _windows_on_front(b: SceneBuilder, obj: int, xs: np.ndarray, ys: np.ndarray, z: float, w: float, h: float,
                      rng: np.random.Generator) -> None:
    if not len(ys) or not len(xs):
        return
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    corners = [(xx, yy), (xx + w, yy), (xx + w, yy + h), (xx, yy + h)]
    pts = np.stack([b.view.project(cx, cy, z) for cx, cy in corners], axis=1)
    _add_window_sets(b, obj, pts, z, rng)


def _add_window_sets(b: SceneBuilder, obj: int, pts: np.ndarray, depth: float, rng: np.random.Generator) -> None:
    """Windows big enough to see, split into unlit and lit (glowing at night)."""
    lo, hi = pts.min(axis=1), pts.max(axis=1)
    span = hi - lo
    w, h = b.view.width, b.view.height
    keep = (span[:, 0] >= 1.0) & (span[:, 1] >= 1.0) & (hi[:, 0] > -0.2 * w) & (lo[:, 0] < 1.2 * w) \
        & (hi[:, 1] > -0.2 * h) & (lo[:, 1] < 1.2 * h)
    pts = pts[keep]
    if not len(pts):
        return
    lit = rng.random(len(pts)) < 0.3
    b.add(list(pts[~lit]), BUILDING, "window", obj, depth, FACADE, FRONT, evenodd=True)
    b.add(list(pts[lit]), BUILDING, "window", obj, depth, FACADE, FRONT, emissive=True, evenodd=True)


def _add_boundary(b: SceneBuilder, side: Side, z0: float, z1: float, spec: LayoutSpec, rng: np.random.Generator,
                  always: bool = False) -> None:
    """A wall, fence or hedge along the property line (or nothing)."""
    r = rng.random() * ((spec.wall_prob + spec.fence_prob + spec.hedge_prob) if always else 1.0)
    x = side.x(side.line + 0.1)
    if r < spec.wall_prob:
        cls, height, thick, material = WALL, float(rng.uniform(1.0, 3.2)), 0.3, "body"
    elif r < spec.wall_prob + spec.fence_prob:
        cls, height, thick, material = FENCE, float(rng.uniform(0.9, 2.2)), 0.08, "body"
    elif r < spec.wall_prob + spec.fence_prob + spec.hedge_prob:
        cls, height, thick, material = VEGETATION, float(rng.uniform(0.7, 1.7)), 0.8, "body2"
    else:
        return
    lo, hi = sorted((x, x + side.sign * thick))
    obj = b.new_object()
    for poly, shade in box(b.view, lo, hi, 0.0, height, z0 + 0.3, z1 - 0.3, n=8):
        b.add(poly, cls, material, obj, z0, BOUNDARY, shade)
    if cls == FENCE and rng.random() < 0.6:  # posts
        posts = [front_face(b.view, x - 0.06, x + 0.06, 0.0, height + 0.1, z)
                 for z in np.arange(z0 + 0.3, z1 - 0.3, float(rng.uniform(2.0, 3.5)))]
        b.add(posts, FENCE, "metal", obj, z0, BOUNDARY, FRONT)


def _add_backdrop(b: SceneBuilder, plan: StreetPlan, rng: np.random.Generator) -> None:
    """Buildings and tree lines across the far end of the street, with a ragged skyline."""
    view = b.view
    z_end = plan.length
    x, x_stop = view.visible_x(z_end + 12.0)
    x -= float(rng.uniform(0.0, 20.0))
    while x < x_stop:
        width = float(rng.uniform(8.0, 30.0))
        z = z_end + float(rng.uniform(0.0, 12.0))
        if rng.random() < 0.25:
            top = float(rng.uniform(6.0, 14.0))
            obj = b.new_object()
            centres = np.linspace(x, x + width, 4)
            polys = [ellipse(view.project(cx, top * 0.7, z)[0], view.scale(z) * width / 3.5,
                             view.scale(z) * top * 0.45, 12) for cx in centres]
            polys.append(front_face(view, x, x + width, 0.0, top * 0.6, z))
            for poly in polys:
                b.add(poly, VEGETATION, "body", obj, z, BACKDROP, FRONT)
        else:
            height = float(rng.uniform(8.0, 40.0))
            obj = b.new_object()
            b.add(front_face(view, x, x + width, 0.0, height, z), BUILDING, "body", obj, z, BACKDROP, FRONT)
            if rng.random() < 0.5 and view.scale(z) * 1.2 >= 1.0:
                ys = np.arange(2.5, height - 1.5, 3.2)
                xs = np.arange(x + 1.0, x + width - 1.5, 2.8)
                _windows_on_front(b, obj, xs, ys, z, 1.2, 1.5, rng)
        x += width
