"""The street plan: the cross-section (lanes, verges, sidewalks, property lines) and the street's length.

All positions are in road coordinates (metres, ``x`` = 0 on the centre line, ``z`` forward). Lanes are numbered
from the left; the left ``oncoming`` lanes carry traffic towards the camera (right-hand traffic) and the ego
vehicle drives in one of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinmem.synth.style import LayoutSpec


def draw_int(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    """A whole number drawn uniformly from ``[low, high]`` (inclusive)."""
    return int(rng.integers(int(bounds[0]), int(bounds[1]) + 1))


@dataclass(frozen=True)
class Side:
    """One side of the street; ``sign`` is -1 (left) or +1 (right), widths are positive."""

    sign: int
    road_edge: float  # |x| of the road's edge
    verge: float  # terrain between the road and the sidewalk
    sidewalk: float  # 0: no sidewalk, terrain instead

    @property
    def walk_inner(self) -> float:
        return self.road_edge + self.verge

    @property
    def line(self) -> float:
        """|x| of the property line, where buildings, walls, fences and hedges stand."""
        return self.walk_inner + max(self.sidewalk, 1.5)

    def x(self, distance: float) -> float:
        """Road-frame x at ``distance`` metres from the centre line on this side."""
        return self.sign * distance


@dataclass(frozen=True)
class StreetPlan:
    lanes: int
    lane_width: float
    oncoming: int  # number of lanes (from the left) with traffic towards the camera
    ego_lane: int
    left: Side
    right: Side
    length: float  # z of the backdrop closing the street
    curve: float
    cross: tuple[float, float] | None  # z range of a cross street, if any
    tram_lane: int | None  # lane carrying tram rails, if any

    @property
    def half(self) -> float:
        return 0.5 * self.lanes * self.lane_width

    def lane_x(self, lane: int) -> float:
        return -self.half + (lane + 0.5) * self.lane_width

    @property
    def cam_x(self) -> float:
        return self.lane_x(self.ego_lane)

    def sides(self) -> tuple[Side, Side]:
        return self.left, self.right

    def in_cross(self, z: float, margin: float = 0.0) -> bool:
        return self.cross is not None and self.cross[0] - margin <= z <= self.cross[1] + margin


def sample_plan(spec: LayoutSpec, rng: np.random.Generator) -> StreetPlan:
    lanes = draw_int(rng, spec.lanes)
    lane_width = float(rng.uniform(2.9, 3.6))
    oncoming = lanes // 2
    ego_lane = int(rng.integers(oncoming, lanes)) if lanes > oncoming else 0
    half = 0.5 * lanes * lane_width
    sides = []
    for sign in (-1, 1):
        has_walk = rng.random() < spec.sidewalk_prob
        verge = float(rng.uniform(0.8, 3.0)) if rng.random() < spec.verge_prob or not has_walk else 0.0
        walk = float(rng.uniform(1.8, 5.0)) if has_walk else 0.0
        sides.append(Side(sign, half + float(rng.uniform(0.0, 0.4)) * (1 - has_walk), verge, walk))
    length = float(rng.uniform(*spec.street_length))
    cross = None
    if rng.random() < 0.45 and length > 35:
        start = float(rng.uniform(14.0, min(length - 15.0, 70.0)))
        cross = (start, start + float(rng.uniform(8.0, 16.0)))
    tram = int(rng.integers(0, lanes)) if rng.random() < spec.train_prob else None
    return StreetPlan(lanes, lane_width, oncoming, ego_lane, sides[0], sides[1], length,
                      float(rng.uniform(*spec.curve)), cross, tram)
