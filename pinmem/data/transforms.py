"""Training augmentation and evaluation transforms (docs/method.md §6, §7).

Every transform follows the dataset contract ``transform(image, label, seed) -> (image, label)``: ``image`` is
H×W×3 RGB ``uint8``, ``label`` H×W ``uint8`` trainIds (255 = ignore); the result is a normalised float32 3×H×W
tensor and an int64 H×W tensor. With the same integer ``seed`` the output is identical bit for bit; ``seed=None``
draws fresh OS entropy.

Labels are only ever nearest-resampled, cropped and padded with 255, so they stay aligned with the image: the
label of an output pixel is the source pixel that contains the output pixel's centre, and the bicubic image
sample is taken at that same centre.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402  (the variable above must be set first)

from pinmem.errors import ConfigError  # noqa: E402

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255
_BICUBIC_SUPPORT = 2.0  # Pillow's bicubic kernel radius (in output pixels when upsampling)


# -- normalisation ------------------------------------------------------------------------------------------
def _normalise_luts(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    values = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([((values - m) / s).astype(np.float32) for m, s in zip(mean, std, strict=True)])


def normalize(
    image: np.ndarray, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """H×W×3 RGB ``uint8`` → float32 3×H×W tensor of ``(image / 255 - mean) / std``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalize expects an H×W×3 uint8 image, got {image.shape} {image.dtype}")
    return _apply_luts(_normalise_luts(mean, std), image)


def _apply_luts(luts: np.ndarray, image: np.ndarray) -> torch.Tensor:
    """Per-channel table look-up straight into the 3×H×W layout (faster than float arithmetic on H×W×3)."""
    out = np.empty((3, *image.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.take(luts[c], image[:, :, c], out=out[c])
    return torch.from_numpy(out)


def denormalize(
    tensor: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> np.ndarray:
    """Inverse of :func:`normalize`: float 3×H×W tensor → H×W×3 RGB ``uint8`` (rounded, clipped)."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"denormalize expects a 3×H×W tensor, got shape {tuple(tensor.shape)}")
    array = tensor.detach().cpu().double().numpy().transpose(1, 2, 0)
    array = (array * np.asarray(std) + np.asarray(mean)) * 255.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def label_to_tensor(label: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(label.astype(np.int64))


# -- geometry -----------------------------------------------------------------------------------------------
def _pair(size: int | tuple[int, int], what: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ConfigError(f"{what} must be positive, got {size!r}")
    return int(h), int(w)


def _check_inputs(image: np.ndarray, label: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image.shape} {image.dtype}")
    if label.dtype != np.uint8 or label.shape != image.shape[:2]:
        raise ValueError(f"expected an H×W uint8 label of size {image.shape[:2]}, got {label.shape} {label.dtype}")


def nearest_indices(start: int, stop: int, src_size: int, dst_size: int) -> np.ndarray:
    """Source pixel containing the centre of each output pixel ``start..stop-1`` of a ``src→dst`` resize."""
    centres = (np.arange(start, stop, dtype=np.float64) + 0.5) * (src_size / dst_size)
    return np.minimum(centres.astype(np.int64), src_size - 1)


def resize_region(
    image: np.ndarray, label: np.ndarray, scaled: tuple[int, int], region: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``y0:y1`` and columns ``x0:x1`` of the pair resized to ``scaled`` = (h, w), computing only those.

    The image is Pillow-bicubic (antialiased when shrinking, as the released code's PIL resize), the label
    nearest; the result equals resizing the whole pair and then slicing (up to rounding in the last bit).
    """
    (h, w), (nh, nw) = image.shape[:2], scaled
    y0, y1, x0, x1 = region
    box = (x0 * w / nw, y0 * h / nh, x1 * w / nw, y1 * h / nh)
    # Cut out the source rows/columns the bicubic kernel can reach, so Pillow only converts what it needs.
    margin_x = math.ceil(_BICUBIC_SUPPORT * max(w / nw, 1.0)) + 1
    margin_y = math.ceil(_BICUBIC_SUPPORT * max(h / nh, 1.0)) + 1
    sx0, sx1 = max(0, math.floor(box[0]) - margin_x), min(w, math.ceil(box[2]) + margin_x)
    sy0, sy1 = max(0, math.floor(box[1]) - margin_y), min(h, math.ceil(box[3]) + margin_y)
    sub = Image.fromarray(np.ascontiguousarray(image[sy0:sy1, sx0:sx1]))
    local_box = (box[0] - sx0, box[1] - sy0, min(box[2] - sx0, sx1 - sx0), min(box[3] - sy0, sy1 - sy0))
    image_out = np.asarray(sub.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC, box=local_box))
    rows, cols = nearest_indices(y0, y1, h, nh), nearest_indices(x0, x1, w, nw)
    label_out = label.take(rows, axis=0).take(cols, axis=1)
    return image_out, label_out


@dataclass(frozen=True)
class CropGeometry:
    """A rescale of the whole image to ``scaled`` (h, w) followed by a ``crop`` (h, w) window at (top, left).

    ``top``/``left`` are in rescaled-image pixels and negative where the window is larger than the image
    (the image then lands at a random place inside the crop; the rest is padding).
    """

    scaled: tuple[int, int]
    top: int
    left: int
    crop: tuple[int, int]


def sample_geometry(
    rng: np.random.Generator, size: tuple[int, int], crop: tuple[int, int], scale_range: tuple[float, float]
) -> CropGeometry:
    """Draw the scale factor, then a crop window that either lies inside the image or contains it."""
    scale = float(rng.uniform(scale_range[0], scale_range[1]))
    scaled = (max(1, int(size[0] * scale + 0.5)), max(1, int(size[1] * scale + 0.5)))
    offsets = []
    for extent, window in zip(scaled, crop, strict=True):
        low, high = min(0, extent - window), max(0, extent - window)
        offsets.append(int(rng.integers(low, high + 1)))
    return CropGeometry(scaled=scaled, top=offsets[0], left=offsets[1], crop=crop)


def apply_geometry(image: np.ndarray, label: np.ndarray, geom: CropGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Rescale (bicubic image, nearest label) and crop; padding is 0 in the image and 255 in the label."""
    (nh, nw), (ch, cw) = geom.scaled, geom.crop
    y0, y1 = max(geom.top, 0), min(geom.top + ch, nh)
    x0, x1 = max(geom.left, 0), min(geom.left + cw, nw)
    image_part, label_part = resize_region(image, label, geom.scaled, (y0, y1, x0, x1))
    if (y1 - y0, x1 - x0) == (ch, cw):
        return np.ascontiguousarray(image_part), np.ascontiguousarray(label_part)
    image_out = np.zeros((ch, cw, 3), dtype=np.uint8)
    label_out = np.full((ch, cw), IGNORE_INDEX, dtype=np.uint8)
    oy, ox = y0 - geom.top, x0 - geom.left
    image_out[oy : oy + y1 - y0, ox : ox + x1 - x0] = image_part
    label_out[oy : oy + y1 - y0, ox : ox + x1 - x0] = label_part
    return image_out, label_out


def _rng_for(seed: int | None) -> np.random.Generator:
    if seed is None:
        return np.random.default_rng()
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"augmentation seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(seed)


# -- training augmentation ------------------------------------------------------------------------------------
class TrainTransform:
    """The paper's training augmentation (docs/method.md §6), in this order:

    random rescale ×U(scale_range) (bicubic image, nearest label) and random crop ``crop_size`` (an int or
    (h, w); padding image 0 / label 255 where the rescaled image is smaller), horizontal flip (``flip_p``),
    ColorJitter(``jitter``) with probability ``jitter_p``, Gaussian blur with σ ~ U(``blur_sigma``) always,
    then ImageNet normalisation of RGB in [0, 1].

    ``strong_jitter=True`` replaces the normal jitter by the released code's ColorJitter(0.8, 0.8, 0.8, 0.3),
    always on (the released MLDG/Pin-the-Memory runs give it to the first-listed source). ``jitter_p=0`` or
    ``jitter=None`` and ``blur_sigma=None`` switch the photometric ops off (the output is then purely
    geometric). The photometric ops use albumentations; the geometric part resizes only the source region
    that lands in the crop.
    """

    def __init__(
        self,
        crop_size: int | tuple[int, int] = 768,
        scale_range: tuple[float, float] = (0.5, 2.0),
        jitter: tuple[float, float, float, float] | None = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.5,
        blur_sigma: tuple[float, float] | None = (0.15, 1.3),
        flip_p: float = 0.5,
        strong_jitter: bool = False,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.crop_size = _pair(crop_size, "crop_size")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(f"scale_range must satisfy 0 < low <= high, got {scale_range!r}")
        for name, p in (("jitter_p", jitter_p), ("flip_p", flip_p)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {p!r}")
        if blur_sigma is not None and not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ConfigError(f"blur_sigma must satisfy 0 < low <= high (or be None), got {blur_sigma!r}")
        if strong_jitter:
            jitter, jitter_p = (0.8, 0.8, 0.8, 0.3), 1.0
        if jitter is not None and len(jitter) != 4:
            raise ConfigError(f"jitter must be (brightness, contrast, saturation, hue), got {jitter!r}")
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.jitter, self.jitter_p = jitter, float(jitter_p)
        self.blur_sigma, self.flip_p, self.strong_jitter = blur_sigma, float(flip_p), strong_jitter
        self.mean, self.std = tuple(mean), tuple(std)
        self._luts = _normalise_luts(self.mean, self.std)
        self._pipeline = A.Compose(self._albumentations_ops(), p=1.0)

    def _albumentations_ops(self) -> list[A.BasicTransform]:
        ops: list[A.BasicTransform] = [A.HorizontalFlip(p=self.flip_p)]
        if self.jitter is not None and self.jitter_p > 0:
            b, c, s, h = self.jitter
            ops.append(A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h, p=self.jitter_p))
        if self.blur_sigma is not None:
            ops.append(A.GaussianBlur(blur_limit=0, sigma_limit=tuple(self.blur_sigma), p=1.0))
        return ops

    def augment(self, image: np.ndarray, label: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The augmentation without normalisation: ``uint8`` crop and label (for inspection and tests)."""
        _check_inputs(image, label)
        rng = _rng_for(seed)
        geom = sample_geometry(rng, image.shape[:2], self.crop_size, self.scale_range)
        image, label = apply_geometry(image, label, geom)
        # One numpy and one Python stream, both derived from the seed, shared by all albumentations ops in a
        # fixed order. (Compose(seed=...)/set_random_seed would give every op its own RNG with the *same*
        # seed, so e.g. the flip and the jitter decisions would always coincide.)
        alb_numpy = np.random.default_rng(rng.integers(2**63))
        alb_python = random.Random(int(rng.integers(2**63)))
        self._pipeline.set_random_state(alb_numpy, alb_python)
        out = self._pipeline(image=image, mask=label)
        return out["image"], out["mask"]

    def __call__(
        self, image: np.ndarray, label: np.ndarray, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.augment(image, label, seed)
        return _apply_luts(self._luts, image), label_to_tensor(label)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, jitter={self.jitter}, "
            f"jitter_p={self.jitter_p}, blur_sigma={self.blur_sigma}, flip_p={self.flip_p}, "
            f"strong_jitter={self.strong_jitter})"
        )


# -- evaluation -----------------------------------------------------------------------------------------------
def center_crop_or_pad(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``size``×``size`` window; where the pair is smaller it is centred and padded (image 0, label 255)."""
    h, w = label.shape
    image_out = np.zeros((size, size, 3), dtype=np.uint8)
    label_out = np.full((size, size), IGNORE_INDEX, dtype=np.uint8)
    src_y, dst_y = max(0, (h - size) // 2), max(0, (size - h) // 2)
    src_x, dst_x = max(0, (w - size) // 2), max(0, (size - w) // 2)
    ph, pw = min(h, size), min(w, size)
    image_out[dst_y : dst_y + ph, dst_x : dst_x + pw] = image[src_y : src_y + ph, src_x : src_x + pw]
    label_out[dst_y : dst_y + ph, dst_x : dst_x + pw] = label[src_y : src_y + ph, src_x : src_x + pw]
    return image_out, label_out


class EvalTransform:
    """Evaluation transform: optional resize to ``height`` keeping the aspect ratio (bicubic image, nearest
    label), optional centre crop of a ``center_crop`` square (padding image 0 / label 255 where the image is
    narrower), then ImageNet normalisation. ``seed`` is ignored. Mapillary: ``height=1536, center_crop=1536``.
    """

    def __init__(
        self,
        height: int | None = None,
        center_crop: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        for name, value in (("height", height), ("center_crop", center_crop)):
            if value is not None and int(value) < 1:
                raise ConfigError(f"EvalTransform {name} must be positive, got {value!r}")
        self.height = None if height is None else int(height)
        self.center_crop = None if center_crop is None else int(center_crop)
        self.mean, self.std = tuple(mean), tuple(std)
        self._luts = _normalise_luts(self.mean, self.std)

    def resize(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resize to ``self.height`` keeping the aspect ratio (a no-op when ``height`` is None or equal)."""
        h, w = label.shape
        if self.height is None or self.height == h:
            return image, label
        new_w = max(1, int(w * self.height / h + 0.5))
        return resize_region(image, label, (self.height, new_w), (0, self.height, 0, new_w))

    def prepare(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resize and crop without normalisation (``uint8``)."""
        _check_inputs(image, label)
        image, label = self.resize(image, label)
        if self.center_crop is not None:
            image, label = center_crop_or_pad(image, label, self.center_crop)
        return image, label

    def __call__(
        self, image: np.ndarray, label: np.ndarray, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del seed  # deterministic
        image, label = self.prepare(image, label)
        return _apply_luts(self._luts, image), label_to_tensor(label)

    def __repr__(self) -> str:
        return f"EvalTransform(height={self.height}, center_crop={self.center_crop})"
