"""Python API for prediction: ``pinmem.load(checkpoint)`` → :class:`Segmenter`.

>>> import pinmem
>>> seg = pinmem.load("runs/pinmem/last.pt")                # on the CPU, whole image
>>> train_ids = seg.predict(rgb)                            # H×W×3 uint8 RGB -> H×W uint8 trainIds
>>> logits = seg.predict_logits(rgb)                        # 19×H×W float32
>>> seg = pinmem.load(path, mode="slide", flip=True, device="cuda", amp="bf16")   # InferenceSettings' fields

Only the checkpoint is needed: its configuration is stored inside it, so no config file, dataset or CLI is
involved. Checkpoints are read with ``torch.load(weights_only=True)``; see :mod:`pinmem.training.checkpoint`.
How the logits are computed (mode, flip, windows, batch size, target BN, autocast, device) is one
:class:`~pinmem.evaluation.inference.InferenceSettings`, shared with ``evaluate`` and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pinmem.data.classes import ClassSet, class_set_from
from pinmem.data.io import ImageTooLargeError, read_image, to_rgb_uint8
from pinmem.data.labels import NUM_CLASSES
from pinmem.data.transforms import normalize
from pinmem.errors import ConfigError, PinmemError
from pinmem.evaluation.inference import InferenceSettings, infer
from pinmem.runtime import model_device, resolve_device
from pinmem.training.checkpoint import load_model

#: the default largest input (pixels) :class:`Segmenter` accepts: 100 megapixels, e.g. 12000×8000
DEFAULT_MAX_PIXELS = 100_000_000
#: output pixels per strip when logits are upsampled to the input size and reduced to one id per pixel, so that
#: a large photo never holds K×H×W floats at once
STRIP_PIXELS = 1 << 22


@dataclass
class Prediction:
    """``train_ids`` H×W uint8, ``logits`` K×H×W float32 (when kept), ``memory_slots`` H×W uint8 index of the
    most similar memory slot per pixel (when requested and the model has a memory)."""

    train_ids: np.ndarray
    logits: np.ndarray | None = None
    memory_slots: np.ndarray | None = None


class Segmenter:
    """A model in eval mode plus how to run it on single RGB images of any size.

    Args:
        model: a pinmem segmentation model (or any module whose output has ``.logits`` or is the logits).
        settings: how logits are computed (:class:`~pinmem.evaluation.inference.InferenceSettings`: ``whole`` or
            ``slide`` with ``crop``/``stride``/``batch_size``/``pad``, ``flip``, ``target_bn``, ``amp``,
            ``device``); ``overrides`` replace its fields. ``device`` None: where the model is.
        max_side: if set, images whose longer side exceeds it are shrunk to it for the forward pass and the
            logits are resized back; the output is always at the input size.
        max_pixels: larger inputs are refused with :class:`pinmem.data.io.ImageTooLargeError` (files before
            they are decoded); None or 0: only the decoder's limit. Without ``keep_logits`` the upsampling to the
            input size runs in strips, so memory grows with the input's pixels, not with pixels × classes.
        config: the training configuration of the checkpoint (kept for reference).
    """

    def __init__(
        self,
        model: nn.Module,
        settings: InferenceSettings | None = None,
        *,
        max_side: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        config: object | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = InferenceSettings.resolve(settings, overrides)
        if max_side is not None and max_side < 1:
            raise ConfigError(f"max_side must be positive, got {max_side}")
        if max_pixels is not None and max_pixels < 0:
            raise ConfigError(f"max_pixels must not be negative, got {max_pixels}")
        self.max_pixels = max_pixels or None
        self.max_side, self.config = max_side, config
        self.device = model_device(model) if self.settings.device is None else resolve_device(self.settings.device)
        self.model = model.to(self.device).eval()
        if self.settings.channels_last:
            self.model.to(memory_format=torch.channels_last)

    @property
    def has_memory(self) -> bool:
        return getattr(self.model, "memory", None) is not None

    def _prepare(self, image: np.ndarray | str | Path) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image, orient=True, max_pixels=self.max_pixels)
        array = np.asarray(image)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
            raise PinmemError(f"expected an H×W×3 RGB image (or gray/RGBA), got an array of shape {array.shape}")
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise PinmemError(f"empty image of shape {array.shape}")
        if self.max_pixels is not None and array.shape[0] * array.shape[1] > self.max_pixels:
            raise ImageTooLargeError(f"an image array of {array.shape[1]}×{array.shape[0]} pixels is above the "
                                     f"limit of {self.max_pixels} pixels (max_pixels)")
        return to_rgb_uint8(array, bgr=False) if (array.ndim != 3 or array.shape[2] != 3 or
                                                   array.dtype != np.uint8) else array

    @torch.no_grad()
    def run(self, image: np.ndarray | str | Path, keep_logits: bool = True, memory: bool = False) -> Prediction:
        """Everything at once: trainIds, optionally logits and the memory-slot map, all at the input size."""
        rgb = self._prepare(image)
        h, w = rgb.shape[:2]
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        x = normalize(rgb).unsqueeze(0).to(self.device)
        out = infer(self.model, x, self.settings, with_memory=memory)
        logits, cosine = out.logits, out.cosine
        slots = None if cosine is None else upsample_argmax(cosine, (h, w))
        if not keep_logits:
            return Prediction(upsample_argmax(logits, (h, w)), None, slots)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)
        train_ids = logits[0].argmax(0).to(torch.uint8).cpu().numpy()
        return Prediction(train_ids, logits[0].float().cpu().numpy(), slots)

    def predict(self, image: np.ndarray | str | Path) -> np.ndarray:
        """H×W uint8 trainIds (0..18) of an RGB ``uint8`` image (gray/RGBA/16-bit arrays are converted)."""
        return self.run(image, keep_logits=False).train_ids

    def predict_logits(self, image: np.ndarray | str | Path) -> np.ndarray:
        """K×H×W float32 logits at the input size (averaged over windows/flips as configured): 4·K bytes per input
        pixel; :meth:`predict` needs far less on large images."""
        logits = self.run(image).logits
        assert logits is not None
        return logits

    def memory_map(self, image: np.ndarray | str | Path) -> np.ndarray:
        """H×W uint8 index of the memory slot most similar to each pixel's feature (slot n = class n)."""
        if not self.has_memory:
            raise PinmemError("this model has no memory module (it was not trained with method pinmem)")
        slots = self.run(image, keep_logits=False, memory=True).memory_slots
        assert slots is not None
        return slots

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", NUM_CLASSES))

    @property
    def classes(self) -> ClassSet:
        """The class names (in output order) and colours the checkpoint records (older ones: Cityscapes for 19
        classes, else ``class i`` with generated colours)."""
        model = getattr(self.config, "model", None)
        return class_set_from(getattr(model, "classes", None), getattr(model, "palette", None), self.num_classes)

    def __repr__(self) -> str:
        return (f"Segmenter({type(self.model).__name__}, device={self.device}, {self.settings.describe()}, "
                f"max_side={self.max_side})")


def load(checkpoint: str | Path, settings: InferenceSettings | None = None, **options: Any) -> Segmenter:
    """A :class:`Segmenter` from a pinmem checkpoint file (weights, memory and architecture come from it).

    ``options``: fields of :class:`~pinmem.evaluation.inference.InferenceSettings` to replace in ``settings``
    (``mode="slide"``, ``device="cuda"`` …) and the :class:`Segmenter` options ``max_side``, ``max_pixels``.
    The model is loaded onto ``settings.device`` (None: the CPU).
    """
    names = InferenceSettings.field_names()
    settings = InferenceSettings.resolve(settings, {k: v for k, v in options.items() if k in names})
    device = resolve_device(settings.device or "cpu")
    loaded = load_model(checkpoint, map_location=device)
    rest = {k: v for k, v in options.items() if k not in names}
    return Segmenter(loaded.model, settings, config=loaded.config, **rest)


def upsample_argmax(scores: torch.Tensor, size: tuple[int, int], strip_pixels: int = STRIP_PIXELS) -> np.ndarray:
    """H×W uint8 argmax over the channels of ``scores`` (1×K×h×w) bilinearly upsampled (align_corners) to
    ``size`` = (H, W), computed in strips of output rows so that at most ``strip_pixels``·K values exist at once.

    Inside a strip the rows are blended by hand from the two nearest source rows and the columns by
    ``F.interpolate``: the same interpolation as one ``F.interpolate`` of the whole map, up to rounding."""
    height, width = size
    src = scores[0].float()
    if height * width <= strip_pixels:
        if tuple(src.shape[-2:]) != (height, width):
            src = F.interpolate(src[None], size=size, mode="bilinear", align_corners=True)[0]
        return src.argmax(0).to(torch.uint8).cpu().numpy()
    out = np.empty((height, width), dtype=np.uint8)
    rows_in = src.shape[1]
    scale = (rows_in - 1) / (height - 1) if height > 1 else 0.0
    step = max(1, strip_pixels // width)
    for top in range(0, height, step):
        rows = torch.arange(top, min(height, top + step), dtype=torch.float64, device=src.device) * scale
        lower = rows.floor().long().clamp(max=rows_in - 1)
        upper = (lower + 1).clamp(max=rows_in - 1)
        weight = (rows - lower).to(src.dtype)[None, :, None]
        strip = src[:, lower] * (1 - weight) + src[:, upper] * weight  # K×rows×w
        if strip.shape[-1] != width:
            strip = F.interpolate(strip[None], size=(strip.shape[1], width), mode="bilinear", align_corners=True)[0]
        out[top : top + strip.shape[1]] = strip.argmax(0).to(torch.uint8).cpu().numpy()
    return out
