"""The pinhole camera that projects the street (metres) onto the image (pixels).

World axes: ``z`` forward along the road, ``x`` to the right *in road coordinates* (0 = the road's centre line,
which bends with the road's curvature), ``y`` up from the ground. The camera looks straight down the road from
``cam_x`` at ``cam_height``; pitch is expressed by where the horizon falls in the image, roll by rotating the
projected points about the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pinmem.synth.style import CameraSpec

Z_MIN = 0.5  # metres: nothing is projected closer than this


@dataclass(frozen=True)
class View:
    width: int
    height: int
    horizon: float  # pixel row of the horizon (before roll)
    focal: float  # pixels
    cam_height: float  # metres
    cam_x: float  # camera's lateral position in road coordinates, metres
    curve: float  # road curvature, 1/metres
    roll: float  # radians

    def lateral(self, x: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
        """Road-frame ``x`` at depth ``z`` -> lateral offset from the camera, metres."""
        return np.asarray(x, dtype=np.float64) + 0.5 * self.curve * np.square(z) - self.cam_x

    def project(self, x, y, z) -> np.ndarray:
        """Road-frame points -> (N, 2) pixel coordinates (before roll); arguments broadcast."""
        z = np.maximum(np.asarray(z, dtype=np.float64), Z_MIN)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        u = 0.5 * self.width + self.focal * (x + 0.5 * self.curve * z * z - self.cam_x) / z
        v = self.horizon + self.focal * (self.cam_height - y) / z
        if u.shape != v.shape:  # broadcast by arithmetic: much cheaper than np.broadcast_arrays on tiny arrays
            zero = 0.0 * (u + v)
            u, v = u + zero, v + zero
        out = np.empty((u.size, 2))
        out[:, 0] = u.ravel()
        out[:, 1] = v.ravel()
        return out

    def visible_x(self, z: float, margin: float = 1.3) -> tuple[float, float]:
        """Road-frame x range that the image shows at depth ``z`` (widened by ``margin``)."""
        half = margin * (0.5 * self.width / self.focal) * z + 2.0
        centre = self.cam_x - 0.5 * self.curve * z * z
        return centre - half, centre + half

    def scale(self, z: float) -> float:
        """Pixels per metre at depth ``z``."""
        return self.focal / max(z, Z_MIN)

    def ground_depth(self, rows: np.ndarray) -> np.ndarray:
        """Depth of the ground seen at pixel rows (inf at and above the horizon)."""
        dv = np.asarray(rows, dtype=np.float64) - self.horizon
        with np.errstate(divide="ignore"):
            return np.where(dv > 0, self.focal * self.cam_height / np.maximum(dv, 1e-9), np.inf)

    def apply_roll(self, points: np.ndarray) -> np.ndarray:
        if self.roll == 0.0:
            return points
        c, s = math.cos(self.roll), math.sin(self.roll)
        centre = np.array([0.5 * self.width, 0.5 * self.height])
        d = points - centre
        return np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1) + centre


def sample_view(spec: CameraSpec, size: tuple[int, int], cam_x: float, curve: float,
                rng: np.random.Generator) -> View:
    """Draw one camera from the style's ranges for an image of ``size`` = (width, height)."""
    width, height = size
    return View(
        width=width,
        height=height,
        horizon=float(rng.uniform(*spec.horizon)) * height,
        focal=float(rng.uniform(*spec.focal)) * width,
        cam_height=float(rng.uniform(*spec.height)),
        cam_x=cam_x + float(rng.uniform(*spec.lateral)),
        curve=curve,
        roll=math.radians(float(rng.uniform(*spec.roll))),
    )
