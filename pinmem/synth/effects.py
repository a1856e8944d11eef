"""Lighting, weather and sensor effects on a painted canvas. They change pixels, never labels.

Order: night (ambient light, glowing lamps and windows), lighting (colour temperature, brightness, contrast,
saturation), fog (by depth), rain (streaks and haze), then the sensor (blur, vignetting, noise) and
quantisation to ``uint8``. JPEG compression, where a style asks for it, happens when a JPEG format is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pinmem.synth.camera import View
from pinmem.synth.render import Canvas
from pinmem.synth.style import Style
from pinmem.synth.textures import noise_bank, radial, window


@dataclass(frozen=True)
class Conditions:
    """The per-scene draw of a style's lighting, weather and sensor ranges."""

    night: bool
    ambient: float
    sunny: bool
    shadow: float
    brightness: float
    contrast: float
    saturation: float
    temperature: float
    fog: float
    rain: float
    blur: float
    noise: float
    vignetting: float


def draw_conditions(style: Style, rng: np.random.Generator) -> Conditions:
    light, weather, sensor = style.lighting, style.weather, style.sensor
    night = bool(rng.random() < weather.night_prob)
    fog = float(rng.uniform(*weather.fog)) if rng.random() < weather.fog_prob else 0.0
    rain = float(rng.uniform(*weather.rain)) if rng.random() < weather.rain_prob else 0.0
    sunny = bool(rng.random() < light.sun_prob) and not night and fog == 0.0 and rain == 0.0
    return Conditions(
        night=night, ambient=float(rng.uniform(*weather.night_ambient)), sunny=sunny,
        shadow=float(rng.uniform(*light.shadow)), brightness=float(rng.uniform(*light.brightness)),
        contrast=float(rng.uniform(*light.contrast)), saturation=float(rng.uniform(*light.saturation)),
        temperature=float(rng.uniform(*light.temperature)), fog=fog, rain=rain,
        blur=float(rng.uniform(*sensor.blur)), noise=float(rng.uniform(*sensor.noise)),
        vignetting=float(rng.uniform(*sensor.vignetting)),
    )


def apply_effects(canvas: Canvas, view: View, style: Style, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """The finished H×W×3 ``uint8`` image."""
    image = canvas.image
    h, w = image.shape[:2]
    if cond.night:
        _night(canvas, image, cond, w)
    image = _lighting(image, cond)
    if cond.fog > 0:
        _fog(canvas, image, view, cond.fog, np.asarray(style.weather.fog_color, np.float32))
    if cond.rain > 0:
        image = _rain(image, cond.rain, rng)
    if cond.blur > 0.05:
        sigma = cond.blur * w / 512.0
        image = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.05 else image
    if cond.vignetting > 0:
        image *= (1.0 - cond.vignetting * radial(h, w))[..., None]
    if cond.noise > 0:
        image += cond.noise * window(noise_bank(h, w).sensor, h, w, rng)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _night(canvas: Canvas, image: np.ndarray, cond: Conditions, width: int) -> None:
    image *= np.array([0.8, 0.88, 1.15], np.float32) * cond.ambient
    lit = canvas.emissive[canvas.objects]
    if not lit.any():
        return
    glow = np.where(lit[..., None], canvas.emit_color[canvas.objects], 0.0).astype(np.float32)
    image[lit] = glow[lit]
    sigma = max(width / 120.0, 1.0)
    image += 0.9 * cv2.GaussianBlur(glow, (0, 0), sigma)


def _lighting(image: np.ndarray, cond: Conditions) -> np.ndarray:
    """Colour temperature, brightness, saturation and contrast: one affine colour transform."""
    t = cond.temperature
    gains = np.diag(np.array([1 + 0.22 * t, 1 + 0.03 * t, 1 - 0.22 * t]) * cond.brightness)
    s = cond.saturation
    saturate = s * np.eye(3) + (1 - s) / 3.0 * np.ones((3, 3))
    matrix = cond.contrast * saturate @ gains
    offset = 128.0 * (1.0 - cond.contrast) * np.ones((3, 1))
    return cv2.transform(image, np.hstack([matrix, offset]).astype(np.float32))


def _fog(canvas: Canvas, image: np.ndarray, view: View, density: float, color: np.ndarray) -> None:
    depth = canvas.depth[canvas.objects]
    rows = view.ground_depth(np.arange(image.shape[0]))[:, None].astype(np.float32)
    depth = np.where(canvas.ground[canvas.objects], rows, depth)
    amount = 1.0 - np.exp(-density * np.minimum(depth, 1e4))
    image *= (1.0 - amount)[..., None]
    image += amount[..., None] * color


def _rain(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    image *= 1.0 - 0.25 * strength
    image += 25.0 * strength
    streaks = np.zeros((h, w), np.float32)
    count = int(strength * w * h / 900)
    xs, ys = rng.uniform(0, w, count), rng.uniform(-0.1 * h, h, count)
    lengths = rng.uniform(0.02, 0.08, count) * h
    slant = float(rng.uniform(-0.25, 0.25))
    for x, y, length in zip(xs, ys, lengths, strict=True):
        cv2.line(streaks, (int(x), int(y)), (int(x + slant * length), int(y + length)), 1.0, 1, cv2.LINE_AA)
    image += (60.0 * strength) * cv2.GaussianBlur(streaks, (0, 0), 0.6)[..., None]
    return image
