"""Inference: the logits of a batch under one :class:`InferenceSettings` (whole image or sliding windows, flip,
target BN, autocast).

``whole``
    One forward of the whole image (the released code's training-time validation).
``slide``
    ``crop``×``crop`` windows every ``stride`` pixels (768 / 512 by default, the released evaluation script);
    the last window of a row/column is aligned with the image border. The **logits** (not probabilities) of
    overlapping windows are averaged per pixel. Where the image is smaller than the window along a side, the
    window shrinks to the image along that side (so a window that covers the image gives exactly the
    ``whole`` result); with ``pad=True`` the image is instead padded at the bottom/right with zeros (the mean
    colour after normalisation) up to the window size and the padding is cut off again, as some evaluation
    scripts do. The choice matters for BDD100K (720 rows < 768).
``flip``
    The logits of the horizontally flipped input, flipped back, are averaged with the unflipped ones (per
    window in ``slide`` mode).
``target_bn``
    :func:`target_batchnorm`, TSMLDG's target-specific normalisation: every BatchNorm normalises with the
    statistics of the current input batch instead of its running (source) statistics; the stored running
    statistics are not changed.

:class:`InferenceSettings` is the one declaration of these settings: :func:`pinmem.evaluation.evaluate`,
:class:`pinmem.segmenter.Segmenter` and the ``eval``/``predict`` command-line options
(:mod:`pinmem.commands.options`) all take it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinmem.errors import ConfigError
from pinmem.runtime import AMP_MODES, autocast

MODES = ("whole", "slide")


def _option(help_text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata read by :func:`pinmem.commands.options.add_inference_options`."""
    return {"help": help_text, **extra}


@dataclass(frozen=True)
class InferenceSettings:
    """How logits are computed from images: the one place these settings and their defaults are declared.

    Stored beside every evaluation number (:meth:`to_dict`, :meth:`describe`: docs/method.md §8 asks to say which
    mode produced a number). Functions that take a settings object also take its fields as keyword arguments
    (``evaluate(model, ds, mode="slide")``), applied on top of it with :meth:`resolve`.
    """

    mode: str = field(default="whole", metadata=_option(
        "whole image (default) or sliding windows (logits averaged over overlaps)", choices=MODES))
    flip: bool = field(default=False, metadata=_option("also average the horizontally flipped prediction"))
    crop: int = field(default=768, metadata=_option("sliding window size (default 768)"))
    stride: int = field(default=512, metadata=_option("sliding window stride (default 512)"))
    pad: bool = field(default=False, metadata=_option(
        "slide: pad images smaller than a window instead of shrinking the window"))
    batch_size: int = field(default=1, metadata=_option(
        "images per forward (whole mode; consecutive images of the same size only) or windows per forward "
        "(slide mode) (default 1)"))
    target_bn: bool = field(default=False, metadata=_option(
        "BatchNorm uses the statistics of each target batch (TSMLDG); stored statistics unchanged"))
    amp: str = field(default="none", metadata=_option("autocast (default none)", choices=AMP_MODES))
    #: None: where the model is (a checkpoint is loaded onto the CPU); ``auto``: CUDA when available
    device: str | None = field(default=None, metadata=_option(
        "cpu, cuda, cuda:N or auto (default: auto)", cli_default="auto"))
    #: a layout, not a computation: results equal the default's to float rounding, so :meth:`to_dict` omits it
    channels_last: bool = field(default=False, metadata=_option(
        "run in the channels-last (NHWC) memory format, model included (faster convolutions on CPU and on tensor "
        "cores; equal results to float rounding)"))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        for name in ("crop", "stride", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("flip", "pad", "target_bn", "channels_last"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))  # a torch.device is accepted too

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def resolve(cls, settings: InferenceSettings | None = None,
                overrides: Mapping[str, Any] | None = None) -> InferenceSettings:
        """``settings`` (default: the defaults) with the fields named in ``overrides`` replaced."""
        base = settings if settings is not None else cls()
        if not overrides:
            return base
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown inference setting(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(cls.field_names())}")
        return dataclasses.replace(base, **overrides)

    def describe(self) -> str:
        text = "whole image" if self.mode == "whole" else f"sliding {self.crop}² windows, stride {self.stride}"
        if self.mode == "slide" and self.pad:
            text += ", small images padded"
        text += ", single scale" + (", + horizontal flip" if self.flip else ", no flip")
        if self.target_bn:
            text += ", target-batch BN statistics"
        return text

    def to_dict(self) -> dict[str, Any]:
        """What a result records (not where it ran nor its batch size, which change no number without target BN)."""
        return {"mode": self.mode, "flip": self.flip, "crop": self.crop, "stride": self.stride,
                "target_bn": self.target_bn, "amp": self.amp, "pad": self.pad, "description": self.describe()}


@dataclass
class InferenceOutput:
    """``logits`` B×K×H×W (float32, input size); ``cosine`` B×N×H×W memory similarities (upsampled
    bilinearly to the input size) when requested and the model has a memory, else None."""

    logits: Tensor
    cosine: Tensor | None = None


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one side of ``size`` pixels (the last one flush with the border)."""
    if crop < 1 or stride < 1:
        raise ValueError(f"crop and stride must be positive, got crop={crop}, stride={stride}")
    if size <= crop:
        return [0]
    count = -(-(size - crop) // stride) + 1
    return sorted({min(i * stride, size - crop) for i in range(count)})


def _forward(model: nn.Module, x: Tensor, with_memory: bool, channels_last: bool) -> tuple[Tensor, Tensor | None]:
    out = model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    logits = out if isinstance(out, Tensor) else out.logits
    cosine = None
    if with_memory and not isinstance(out, Tensor) and getattr(out, "cosine", None) is not None:
        cosine = F.interpolate(out.cosine.float(), size=x.shape[-2:], mode="bilinear", align_corners=True)
    return logits.float(), cosine


def _forward_flip(model: nn.Module, x: Tensor, settings: InferenceSettings,
                  with_memory: bool) -> tuple[Tensor, Tensor | None]:
    logits, cosine = _forward(model, x, with_memory, settings.channels_last)
    if settings.flip:
        f_logits, f_cosine = _forward(model, x.flip(-1), with_memory, settings.channels_last)
        logits = (logits + f_logits.flip(-1)) / 2
        if cosine is not None and f_cosine is not None:
            cosine = (cosine + f_cosine.flip(-1)) / 2
    return logits, cosine


def _slide(model: nn.Module, images: Tensor, settings: InferenceSettings, with_memory: bool) -> InferenceOutput:
    crop, stride, batch_size = settings.crop, settings.stride, settings.batch_size
    b, _, h, w = images.shape
    if settings.pad:
        ph, pw = max(h, crop), max(w, crop)
        if (ph, pw) != (h, w):
            images = F.pad(images, (0, pw - w, 0, ph - h))
        ch = cw = crop
    else:
        ph, pw, ch, cw = h, w, min(h, crop), min(w, crop)
    boxes = [(y, x) for y in window_starts(ph, ch, stride) for x in window_starts(pw, cw, stride)]
    jobs = [(i, y, x) for i in range(b) for (y, x) in boxes]
    logits_sum: Tensor | None = None
    cosine_sum: Tensor | None = None
    count = images.new_zeros((1, 1, ph, pw))
    for y, x in boxes:
        count[..., y : y + ch, x : x + cw] += 1
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        windows = torch.stack([images[i, :, y : y + ch, x : x + cw] for i, y, x in chunk])
        logits, cosine = _forward_flip(model, windows, settings, with_memory)
        if logits_sum is None:
            logits_sum = logits.new_zeros((b, logits.shape[1], ph, pw))
        if cosine is not None and cosine_sum is None:
            cosine_sum = cosine.new_zeros((b, cosine.shape[1], ph, pw))
        for k, (i, y, x) in enumerate(chunk):
            logits_sum[i, :, y : y + ch, x : x + cw] += logits[k]
            if cosine is not None and cosine_sum is not None:
                cosine_sum[i, :, y : y + ch, x : x + cw] += cosine[k]
    assert logits_sum is not None
    logits_avg = (logits_sum / count)[..., :h, :w]
    cosine_avg = None if cosine_sum is None else (cosine_sum / count)[..., :h, :w]
    return InferenceOutput(logits_avg, cosine_avg)


@torch.no_grad()
def infer(
    model: nn.Module,
    images: Tensor,
    settings: InferenceSettings | None = None,
    with_memory: bool = False,
    **overrides: Any,
) -> InferenceOutput:
    """Logits (and optionally memory similarities) of normalised ``images`` (B×3×H×W) at their own size.

    ``settings`` (default :class:`InferenceSettings`; ``overrides`` replace its fields, e.g. ``mode="slide"``)
    choose whole image or windows, flip, target BN and autocast; ``batch_size`` is the number of windows per
    forward in ``slide`` mode (``whole`` runs the batch as given). ``settings.device`` is not used: the images
    must be where the model is. The model's train/eval state is used as it is: call ``model.eval()`` first.
    With ``channels_last`` the batches are made channels-last here; convert the model too
    (``model.to(memory_format=torch.channels_last)``, as :func:`~pinmem.evaluation.evaluate` and
    :class:`~pinmem.segmenter.Segmenter` do), or the convolutions gain little.
    """
    settings = InferenceSettings.resolve(settings, overrides)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected B×3×H×W images, got shape {tuple(images.shape)}")
    norm = target_batchnorm(model) if settings.target_bn else contextlib.nullcontext()
    with norm, autocast(settings.amp, images.device):
        if settings.mode == "whole":
            return InferenceOutput(*_forward_flip(model, images, settings, with_memory))
        return _slide(model, images, settings, with_memory)


BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LazyBatchNorm1d,
                   nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, BATCHNORM_TYPES)


def _batch_statistics_hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
    """Use batch statistics unless a channel has a single value (e.g. the ASPP image pooling at batch 1)."""
    x = args[0]
    module.training = x.numel() // max(1, x.shape[1]) > 1


@contextlib.contextmanager
def target_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, BatchNorm layers normalise with the statistics of the current batch (TSMLDG's
    target-specific normalisation) without touching their running statistics. Where a channel holds a
    single value (a 1×1 map in a batch of one), that layer falls back to its running statistics."""
    saved: list[tuple[nn.Module, bool, bool]] = []
    handles = []
    try:
        for m in model.modules():
            if _is_batchnorm(m):
                saved.append((m, m.training, m.track_running_stats))
                m.track_running_stats = False  # with training=True: batch stats, running buffers not passed
                handles.append(m.register_forward_pre_hook(_batch_statistics_hook))
        yield model
    finally:
        for h in handles:
            h.remove()
        for m, training, track in saved:
            m.training, m.track_running_stats = training, track


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches`` ("precise BN": Wu & Johnson,
    *Rethinking "Batch" in BatchNorm*, 2021), computed with the model's current weights.

    Training leaves running statistics that are an exponential average (momentum 0.1) over the last few
    iterations' weights and batches; when the weights still move fast (short runs, high lr), they can disagree
    with what the final weights produce, and the error compounds with depth. Here each BatchNorm normalises with
    the batch's statistics (its forward in training mode, as during training) while every other module stays in
    eval mode (no dropout or drop-connect, the memory read without Gumbel noise), and the running mean and
    variance become the plain mean of the per-batch ones. Feed source images only: statistics of target images
    would be target-specific normalisation (:func:`target_batchnorm`), not an evaluation of the source model.
    The model is left in eval mode, with its momenta restored. Returns the number of batches used.
    """
    layers = [m for m in model.modules() if _is_batchnorm(m)]
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    count = 0
    try:
        for images in batches:
            model(images)
            count += 1
        if count == 0:
            raise ValueError("recompute_bn_statistics needs at least one batch")
    except BaseException:
        for m, (_, state) in zip(layers, saved, strict=True):
            m.load_state_dict(state)  # a failed or empty pass leaves the statistics as they were
        raise
    finally:
        for m, (momentum, _) in zip(layers, saved, strict=True):
            m.momentum = momentum
        model.eval()
    return count
