"""Forward passes for evaluation and prediction: whole image or sliding window, optional flip, target BN.

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

``target_batchnorm(model)`` is TSMLDG's target-specific normalisation: every BatchNorm normalises with the
statistics of the current input batch instead of its running (source) statistics; the stored running
statistics are not changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("whole", "slide")


@dataclass
class Inference:
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


def _forward(model: nn.Module, x: Tensor, with_memory: bool) -> tuple[Tensor, Tensor | None]:
    out = model(x)
    logits = out if isinstance(out, Tensor) else out.logits
    cosine = None
    if with_memory and not isinstance(out, Tensor) and getattr(out, "cosine", None) is not None:
        cosine = F.interpolate(out.cosine.float(), size=x.shape[-2:], mode="bilinear", align_corners=True)
    return logits.float(), cosine


def _forward_flip(model: nn.Module, x: Tensor, flip: bool, with_memory: bool) -> tuple[Tensor, Tensor | None]:
    logits, cosine = _forward(model, x, with_memory)
    if flip:
        f_logits, f_cosine = _forward(model, x.flip(-1), with_memory)
        logits = (logits + f_logits.flip(-1)) / 2
        if cosine is not None and f_cosine is not None:
            cosine = (cosine + f_cosine.flip(-1)) / 2
    return logits, cosine


def _slide(
    model: nn.Module, images: Tensor, flip: bool, crop: int, stride: int, batch_size: int, with_memory: bool,
    pad: bool,
) -> Inference:
    b, _, h, w = images.shape
    if pad:
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
    for start in range(0, len(jobs), max(1, batch_size)):
        chunk = jobs[start : start + max(1, batch_size)]
        windows = torch.stack([images[i, :, y : y + ch, x : x + cw] for i, y, x in chunk])
        logits, cosine = _forward_flip(model, windows, flip, with_memory)
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
    return Inference(logits_avg, cosine_avg)


@torch.no_grad()
def infer(
    model: nn.Module,
    images: Tensor,
    mode: str = "whole",
    flip: bool = False,
    crop: int = 768,
    stride: int = 512,
    batch_size: int = 1,
    with_memory: bool = False,
    pad: bool = False,
) -> Inference:
    """Logits (and optionally memory similarities) of normalised ``images`` (B×3×H×W) at their own size.

    ``batch_size`` is the number of windows per forward in ``slide`` mode (``whole`` runs the batch as given);
    ``pad`` pads images smaller than the window instead of shrinking the window (``slide`` only).
    The model's train/eval state is used as it is: call ``model.eval()`` first.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected B×3×H×W images, got shape {tuple(images.shape)}")
    if mode == "whole":
        return Inference(*_forward_flip(model, images, flip, with_memory))
    return _slide(model, images, flip, int(crop), int(stride), int(batch_size), with_memory, pad)


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
