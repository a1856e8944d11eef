"""Polygons for the shapes the street is made of, projected through a :class:`~pinmem.synth.camera.View`.

Faces parallel to the road follow its curvature (sampled along ``z``); boxes return only their visible faces,
each with a shade (side faces darker, tops brighter). Small things (people, signs, wheels) are drawn as
screen-space outlines scaled by the distance.
"""

from __future__ import annotations

import math

import numpy as np

from pinmem.synth.camera import View

SIDE, FRONT, TOP = 1.0, 0.0, -1.0


def z_samples(view: View, z0: float, z1: float, n: int = 10) -> np.ndarray:
    """Depths from ``z0`` to ``z1``, geometric so that near parts get more samples; 2 when the road is straight."""
    z0 = max(z0, 0.5)
    z1 = max(z1, z0 + 1e-3)
    count = 2 if abs(view.curve) < 1e-7 else n
    return z0 * (z1 / z0) ** np.linspace(0.0, 1.0, count)


def ground_strip(view: View, x0: float, x1: float, z0: float, z1: float, n: int = 12) -> np.ndarray:
    """The ground between lateral positions ``x0``..``x1`` (road frame) and depths ``z0``..``z1``."""
    zs = z_samples(view, z0, z1, n)
    left = view.project(x0, 0.0, zs)
    right = view.project(x1, 0.0, zs[::-1])
    return np.concatenate([left, right])


def side_face(view: View, x: float, y0: float, y1: float, z0: float, z1: float, n: int = 10) -> np.ndarray:
    """A vertical face parallel to the road at lateral ``x``, from height ``y0`` to ``y1``."""
    zs = z_samples(view, z0, z1, n)
    return np.concatenate([view.project(x, y0, zs), view.project(x, y1, zs[::-1])])


def front_face(view: View, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """A vertical face across the road at depth ``z``."""
    xs = np.array([x0, x1, x1, x0])
    ys = np.array([y0, y0, y1, y1])
    return view.project(xs, ys, np.full(4, z))


def box(view: View, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
        n: int = 4) -> list[tuple[np.ndarray, float]]:
    """The visible faces of an axis-aligned box as ``(polygon, shade)``: top, side, then the near face."""
    faces: list[tuple[np.ndarray, float]] = []
    lat0, lat1 = float(view.lateral(x0, z0)), float(view.lateral(x1, z0))
    if view.cam_height > y1:
        faces.append((_top(view, x0, x1, y1, z0, z1, n), TOP))
    if lat0 > 0:
        faces.append((side_face(view, x0, y0, y1, z0, z1, n), SIDE))
    elif lat1 < 0:
        faces.append((side_face(view, x1, y0, y1, z0, z1, n), SIDE))
    faces.append((front_face(view, x0, x1, y0, y1, z0), FRONT))
    return faces


def _top(view: View, x0: float, x1: float, y: float, z0: float, z1: float, n: int = 4) -> np.ndarray:
    zs = z_samples(view, z0, z1, n)
    return np.concatenate([view.project(x0, y, zs), view.project(x1, y, zs[::-1])])


def wheel_on_side(view: View, x: float, zc: float, radius: float, n: int = 14) -> np.ndarray:
    """A wheel on a face parallel to the road: a circle in the (z, y) plane at lateral ``x``."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return view.project(x, radius + radius * np.sin(t), zc + radius * np.cos(t))


def ellipse(centre: np.ndarray, rx: float, ry: float, n: int = 16, angle: float = 0.0) -> np.ndarray:
    """A screen-space ellipse (pixels)."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ex, ey = rx * np.cos(t), ry * np.sin(t)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        ex, ey = c * ex - s * ey, s * ex + c * ey
    return np.stack([centre[0] + ex, centre[1] + ey], axis=1)


def ring(centre: np.ndarray, r_out: float, r_in: float, n: int = 16) -> list[np.ndarray]:
    """A screen-space ring as outer and inner contours (filled even-odd: the hole stays open)."""
    outer = ellipse(centre, r_out, r_out, n)
    if r_in < 0.75:
        return [outer]
    return [outer, ellipse(centre, r_in, r_in, n)]


def local(anchor: np.ndarray, scale: float, points, mirror: bool = False) -> np.ndarray:
    """Screen polygon from outline ``points`` in metres (x right, y up) around a projected ``anchor``."""
    pts = np.asarray(points, dtype=np.float64)
    sx = -scale if mirror else scale
    return np.stack([anchor[0] + sx * pts[:, 0], anchor[1] - scale * pts[:, 1]], axis=1)


def bar(anchor: np.ndarray, scale: float, a, b, width: float, mirror: bool = False) -> np.ndarray:
    """A thick line from ``a`` to ``b`` (metres, local) as a quad."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = b - a
    length = float(np.hypot(*d)) or 1e-6
    nrm = np.array([-d[1], d[0]]) / length * (width / 2)
    return local(anchor, scale, [a + nrm, b + nrm, b - nrm, a - nrm], mirror)
