"""Primitives: filled polygons with a class, a material and a depth, and the builder that collects them.

A layout is a list of primitives in painting order (back to front). Each primitive is one or more polygons in
pixel coordinates, filled with one class id; ``material`` names how the renderer colours it (``body`` and
``body2`` draw from the class's colour distribution, anything else from the style's materials), and ``obj``
groups the parts of one object so that they share their colours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pinmem.synth.camera import View

# painting layers, back to front; inside a layer, farther primitives are painted first
GROUND, BACKDROP, FACADE, BOUNDARY, OBJECT, EGO = range(6)


@dataclass
class Primitive:
    polys: list[np.ndarray]  # each (N, 2) float pixel coordinates before the camera roll
    cls: int  # trainId, or 255 (ignore)
    material: str
    obj: int
    depth: float  # metres; ground primitives take their depth per pixel row instead
    layer: int
    shade: float = 0.0  # > 0 darker (side faces), < 0 brighter (tops)
    emissive: bool = False  # glows at night (lamps, lit windows, headlights)
    evenodd: bool = False  # fill all polygons at once, even-odd (rings with holes, many disjoint windows)
    seq: int = 0


@dataclass
class Layout:
    """What is where in one scene: the camera, the primitives in painting order, and ground shadows.

    Polygons are in pixel coordinates before the camera's roll; :func:`pinmem.synth.render.fixed_point`
    applies it.
    """

    view: View
    primitives: list[Primitive]
    shadows: list[np.ndarray] = field(default_factory=list)  # polygons on the ground shaded when sunny
    contact: list[np.ndarray] = field(default_factory=list)  # always-dark patches under vehicles


class SceneBuilder:
    """Collects primitives; :meth:`finish` sorts them for the painter's algorithm."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.primitives: list[Primitive] = []
        self.shadows: list[np.ndarray] = []
        self.contact: list[np.ndarray] = []
        self._objects = 0

    def new_object(self) -> int:
        self._objects += 1
        return self._objects

    def add(self, polys: list[np.ndarray] | np.ndarray, cls: int, material: str, obj: int, depth: float,
            layer: int, shade: float = 0.0, emissive: bool = False, evenodd: bool = False) -> None:
        if isinstance(polys, np.ndarray):
            polys = [polys]
        polys = [p for p in polys if len(p) >= 3]
        if polys:
            self.primitives.append(Primitive(polys, cls, material, obj, float(depth), layer, shade, emissive,
                                             evenodd, len(self.primitives)))

    def finish(self) -> Layout:
        """The primitives in painting order (the camera roll is applied when they are painted)."""
        order = sorted(self.primitives, key=lambda p: (p.layer, -p.depth, p.seq))
        return Layout(self.view, order, self.shadows, self.contact)
