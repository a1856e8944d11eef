"""Pure tensor functions behind the memory module (docs/method.md §3), usable on their own by the training loop.

Shapes: features ``B×C×h×w``; labels ``B×H×W`` integer trainIds (values outside ``[0, N)``, e.g. 255, are
ignored); memory ``N×C``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor


def _full_precision(device: torch.device) -> AbstractContextManager[object]:
    """Disable autocast (class sums over a whole batch must not be accumulated in bf16/fp16)."""
    if device.type in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(device_type=device.type, enabled=False)
    return nullcontext()


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32, or kept in float64 (half precisions are promoted; float64 stays exact)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def _linear_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of 1-D linear interpolation with ``align_corners=True``."""
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = torch.arange(n_out, device=device, dtype=torch.float32) * scale
    i0 = src.floor().long().clamp_(0, n_in - 1)
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    return i0, i1, src - i0


def label_weights(labels: Tensor, num_classes: int, size: tuple[int, int] | torch.Size) -> Tensor:
    """Per-pixel class weights ``w`` (B×N×h×w, float32): the one-hot label map with an extra ignore channel,
    resized bilinearly (``align_corners=True``) to ``size``, ignore channel dropped (docs/method.md §3, write step 2).

    Equal to ``F.interpolate(one_hot, size, mode="bilinear", align_corners=True)[:, :N]`` but computed from
    the four neighbouring labels of every output pixel, so the full-resolution one-hot is never materialised.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be B×H×W, got shape {tuple(labels.shape)}")
    b, in_h, in_w = labels.shape
    h, w = int(size[0]), int(size[1])
    lab = labels.long()
    lab = torch.where((lab >= 0) & (lab < num_classes), lab, torch.full_like(lab, num_classes))
    y0, y1, fy = _linear_taps(in_h, h, labels.device)
    x0, x1, fx = _linear_taps(in_w, w, labels.device)
    out = torch.zeros(b, num_classes + 1, h, w, device=labels.device, dtype=torch.float32)
    for ys, wy in ((y0, 1.0 - fy), (y1, fy)):
        rows = lab.index_select(1, ys)  # B×h×W
        for xs, wx in ((x0, 1.0 - fx), (x1, fx)):
            idx = rows.index_select(2, xs).unsqueeze(1)  # B×1×h×w
            coef = (wy[:, None] * wx[None, :]).expand(b, 1, h, w)
            out.scatter_add_(1, idx, coef)
    return out[:, :num_classes]


def class_sums(features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Numerator and denominator of the per-class masked average over the whole batch (docs/method.md §3, write step 3).

    Returns ``sums`` (N×C) = Σ_{b,p} w_{b,p,n} z_{b,:,p} and ``counts`` (N) = Σ_{b,p} w_{b,p,n}, both
    float32 (autocast off), with ``w`` from :func:`label_weights` at the features' size. Both can be
    all-reduced across ranks before :func:`write_memory` forms the mean. Differentiable with respect to
    ``features``.
    """
    weights = label_weights(labels, num_classes, features.shape[-2:]).flatten(2)  # B×N×P
    with _full_precision(features.device):
        z = at_least_float32(features).flatten(2)  # B×C×P
        weights = weights.to(z.dtype)
        sums = torch.einsum("bnp,bcp->nc", weights, z)
    return sums, weights.sum(dim=(0, 2))


def write_memory(memory: Tensor, sums: Tensor, counts: Tensor, momentum: float = 0.8) -> Tensor:
    """Momentum write (docs/method.md §3, write steps 3–5): M̂_n = m·M_n + (1−m)·sums_n/counts_n for every class with
    ``counts_n > 0``, M̂_n = M_n otherwise, then row-wise L2 normalisation. ``m`` weights the *old* memory."""
    present = (counts > 0).unsqueeze(1)
    mean = sums / counts.clamp_min(1e-12).unsqueeze(1)
    mixed = momentum * memory.to(mean.dtype) + (1.0 - momentum) * mean
    return F.normalize(torch.where(present, mixed, memory.to(mean.dtype)), dim=1)


def gumbel_noise(like: Tensor) -> Tensor:
    """i.i.d. Gumbel(0, 1) samples shaped like ``like`` (−log of an Exp(1) draw)."""
    return -torch.empty_like(like).exponential_().log()


def read_weights(cosine: Tensor, temperature: float = 1.0, gumbel: bool = False) -> Tensor:
    """W = softmax over slots (dim 1) of (s + g)/τ, g ~ Gumbel(0,1) if ``gumbel`` else 0 (docs/method.md §3 read 3)."""
    logits = cosine + gumbel_noise(cosine) if gumbel else cosine
    return torch.softmax(logits / temperature, dim=1)
