"""The style schema: how one domain of the street world looks, as dataclasses.

A style says *how* things look (per-class colours and textures, lighting, weather, sensor) and how the camera and
the crowd differ (camera ranges, layout densities). It never says *what goes where*: the geometry rules live in
:mod:`pinmem.synth.layout` and are the same for every style. Styles are read from YAML by
:mod:`pinmem.synth.style_io`; every field below is a YAML key of the same name.

A *range* is ``[low, high]`` (or one number for a fixed value); each scene draws a value uniformly from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Range = tuple[float, float]
RGB = tuple[float, float, float]

#: YAML keys of the 19 classes, in trainId order (``traffic light`` may also be written ``traffic_light``).
CLASS_KEYS: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

#: Parts whose look does not come from their class colour (lane marks are road, tyres are car, ...).
MATERIAL_KEYS: tuple[str, ...] = (
    "glass", "window", "tyre", "mark", "curb", "rail", "trunk", "skin", "metal", "sign_border", "sign_back",
    "lamp_red", "lamp_amber", "lamp_green", "lamp_off", "headlight", "taillight", "ego", "clutter",
)

PATTERNS: tuple[str, ...] = ("none", "hstripes", "vstripes", "grid")
FORMATS: tuple[str, ...] = ("gtav", "synthia", "cityscapes", "bdd100k", "mapillary", "idd")


def rng_field(default: float | Range, lo: float | None = None, hi: float | None = None, *, integer: bool = False):
    """A ``[low, high]`` range field; ``lo``/``hi`` bound both ends."""
    value = (float(default), float(default)) if isinstance(default, int | float) else tuple(default)
    return field(default=value, metadata={"kind": "range", "lo": lo, "hi": hi, "integer": integer})


def num_field(default: float, lo: float | None = None, hi: float | None = None, *, integer: bool = False):
    """A single number field bounded by ``lo``/``hi``."""
    return field(default=default, metadata={"kind": "number", "lo": lo, "hi": hi, "integer": integer})


def prob_field(default: float):
    return num_field(default, 0.0, 1.0)


@dataclass(frozen=True)
class Look:
    """The colour distribution and texture of one class or material.

    Each object draws one of ``colors`` and jitters each channel by ``spread`` (standard deviation, grey
    levels). ``grain`` is fine per-pixel noise, ``blotch`` coarse mottling (grey levels), ``pattern`` a
    screen-space stripe pattern of ``pattern_strength`` grey levels and ``pattern_period`` pixels at 512 wide.
    """

    colors: tuple[RGB, ...] = field(default=((128.0, 128.0, 128.0),), metadata={"kind": "colors"})
    spread: float = num_field(8.0, 0.0, 128.0)
    grain: float = num_field(3.0, 0.0, 128.0)
    blotch: float = num_field(3.0, 0.0, 128.0)
    pattern: str = field(default="none", metadata={"kind": "choice", "choices": PATTERNS})
    pattern_strength: float = num_field(0.0, 0.0, 128.0)
    pattern_period: float = num_field(4.0, 1.0, 512.0)


@dataclass(frozen=True)
class CameraSpec:
    """Where the camera is and how it sees: ranges drawn per scene (geometry is projected through it)."""

    horizon: Range = rng_field((0.42, 0.5), -0.5, 1.5)  # horizon row as a fraction of the image height
    focal: Range = rng_field((0.9, 1.05), 0.2, 4.0)  # focal length in units of the image width
    height: Range = rng_field((1.2, 1.6), 0.3, 30.0)  # camera height above the road, metres
    roll: Range = rng_field((0.0, 0.0), -30.0, 30.0)  # degrees
    lateral: Range = rng_field((-0.4, 0.4), -3.0, 3.0)  # offset from the ego lane's centre, metres
    bonnet_prob: float = prob_field(0.0)  # chance that the ego vehicle's bonnet (ignore) shows at the bottom
    bonnet: Range = rng_field((0.06, 0.12), 0.0, 0.5)  # its height, fraction of the image height
    resolution_scale: float = num_field(1.0, 0.25, 4.0)  # images are rendered at size × this


@dataclass(frozen=True)
class LayoutSpec:
    """How crowded scenes are: counts are ranges per scene, probabilities per scene or per block."""

    lanes: Range = rng_field((2, 4), 1, 6, integer=True)
    cars: Range = rng_field((3, 10), 0, 80, integer=True)
    parked_cars: Range = rng_field((0, 6), 0, 80, integer=True)
    trucks: Range = rng_field((0, 1), 0, 20, integer=True)
    buses: Range = rng_field((0, 1), 0, 20, integer=True)
    train_prob: float = prob_field(0.12)
    persons: Range = rng_field((2, 8), 0, 200, integer=True)
    riders: Range = rng_field((0, 3), 0, 50, integer=True)
    motorcycle_share: float = prob_field(0.4)  # share of riders on motorcycles (the rest ride bicycles)
    parked_bikes: Range = rng_field((0, 3), 0, 50, integer=True)
    trees: Range = rng_field((2, 8), 0, 100, integer=True)
    poles: Range = rng_field((3, 8), 0, 60, integer=True)
    clutter: Range = rng_field((0, 4), 0, 60, integer=True)
    sidewalk_prob: float = prob_field(0.9)
    verge_prob: float = prob_field(0.3)  # a terrain strip between road and sidewalk
    building_prob: float = prob_field(0.75)  # a block is a building (else a park with trees and terrain)
    wall_prob: float = prob_field(0.25)
    fence_prob: float = prob_field(0.25)
    hedge_prob: float = prob_field(0.2)
    street_length: Range = rng_field((60, 200), 20, 1000)  # metres to the backdrop at the street's end
    curve: Range = rng_field((-0.003, 0.003), -0.05, 0.05)  # road curvature, 1/metres


@dataclass(frozen=True)
class LightingSpec:
    brightness: Range = rng_field((0.95, 1.05), 0.0, 4.0)
    contrast: Range = rng_field((0.95, 1.05), 0.0, 4.0)
    saturation: Range = rng_field((0.95, 1.05), 0.0, 4.0)
    temperature: Range = rng_field((-0.05, 0.05), -1.0, 1.0)  # < 0 bluish, > 0 warm
    sun_prob: float = prob_field(0.5)  # sunny scenes get cast shadows
    shadow: Range = rng_field((0.3, 0.5), 0.0, 1.0)  # darkening inside shadows
    face_shading: float = num_field(0.25, 0.0, 1.0)  # side faces darker by this much, tops brighter
    sky_gradient: float = num_field(0.15, 0.0, 1.0)  # sky brighter towards the horizon


@dataclass(frozen=True)
class WeatherSpec:
    night_prob: float = prob_field(0.0)
    night_ambient: Range = rng_field((0.18, 0.3), 0.0, 1.0)  # light level at night
    fog_prob: float = prob_field(0.0)
    fog: Range = rng_field((0.005, 0.02), 0.0, 1.0)  # extinction per metre
    fog_color: RGB = field(default=(200.0, 200.0, 205.0), metadata={"kind": "rgb"})
    rain_prob: float = prob_field(0.0)
    rain: Range = rng_field((0.3, 0.7), 0.0, 1.0)  # rain strength: streaks, darkening, haze


@dataclass(frozen=True)
class SensorSpec:
    blur: Range = rng_field((0.0, 0.3), 0.0, 10.0)  # Gaussian sigma in pixels at 512 wide
    noise: Range = rng_field((0.0, 2.0), 0.0, 64.0)  # pixel noise, grey levels
    vignetting: Range = rng_field((0.0, 0.0), 0.0, 1.0)  # darkening at the corners
    jpeg_quality: int = num_field(95, 10, 100, integer=True)  # for the JPEG formats (bdd100k, mapillary)


@dataclass(frozen=True)
class Style:
    """One domain: its name, the dataset format it is written in, and how it looks."""

    name: str
    format: str
    classes: tuple[Look, ...]  # indexed by trainId
    materials: dict[str, Look]
    description: str = ""
    camera: CameraSpec = field(default_factory=CameraSpec)
    layout: LayoutSpec = field(default_factory=LayoutSpec)
    lighting: LightingSpec = field(default_factory=LightingSpec)
    weather: WeatherSpec = field(default_factory=WeatherSpec)
    sensor: SensorSpec = field(default_factory=SensorSpec)
    source: str = ""  # the file it was read from
    digest: str = ""  # a hash of its resolved content, for the world manifest

    def look(self, cls: int) -> Look:
        return self.classes[cls]


def _look(*colors: RGB, spread: float = 8.0, grain: float = 2.0, blotch: float = 2.0) -> Look:
    return Look(colors=tuple(tuple(float(v) for v in c) for c in colors), spread=spread, grain=grain, blotch=blotch)


#: The look of every material a style does not set.
DEFAULT_MATERIALS: dict[str, Look] = {
    "glass": _look((45, 55, 65), spread=10),
    "window": _look((60, 70, 85), (90, 100, 110), spread=12),
    "tyre": _look((28, 28, 30), spread=4),
    "mark": _look((225, 225, 220), spread=6),
    "curb": _look((165, 165, 160), spread=8),
    "rail": _look((135, 130, 125), spread=6),
    "trunk": _look((85, 65, 48), spread=10),
    "skin": _look((225, 185, 155), (175, 125, 95), (110, 75, 55), spread=8),
    "metal": _look((150, 150, 155), spread=10),
    "sign_border": _look((240, 240, 240), spread=5),
    "sign_back": _look((150, 150, 150), spread=8),
    "lamp_red": _look((255, 45, 35), spread=3, grain=0, blotch=0),
    "lamp_amber": _look((255, 175, 25), spread=3, grain=0, blotch=0),
    "lamp_green": _look((40, 255, 140), spread=3, grain=0, blotch=0),
    "lamp_off": _look((40, 40, 40), spread=4),
    "headlight": _look((250, 250, 235), spread=4, grain=0, blotch=0),
    "taillight": _look((200, 25, 25), spread=8),
    "ego": _look((30, 30, 35), spread=8),
    "clutter": _look((110, 100, 90), (60, 60, 60), (150, 120, 60), (90, 120, 150), spread=20),
}
