"""Losses of Pin the Memory and its baselines (docs/method.md §4, §6) as small pure functions.

Weights: functions return the *unweighted* term unless stated; the caller forms L_read = L_seg + λ1·L_coh
(λ1 = ``pinmem.lambda_coh``, 0.02), L_update = λ2·L_div (λ2 = ``pinmem.lambda_div``, 0.2) and adds
``isw.weight`` (0.6) · L_isw, all three from the configuration (:mod:`pinmem.engine.config`). The auxiliary
weight 0.4 (:data:`AUX_WEIGHT`) lives inside :func:`segmentation_loss` and the factor 2 of the repulsion inside
:func:`divergence_loss`, as in the paper's formulas. Every cross-entropy ignores label 255 (any value outside
``[0, N)``); a batch with no valid pixel gives 0 rather than NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pinmem.models.memory_ops import at_least_float32

IGNORE_INDEX = 255
AUX_WEIGHT = 0.4

#: maps a batch's number of valid pixels to the denominator of its mean; the trainer passes one that returns
#: the global count over ranks (at least 1) divided by the world size, so averaging the ranks' gradients gives
#: exactly the gradient of the global-batch mean. None: the local count (at least 1).
Normalizer = Callable[[Tensor], Tensor]


def cross_entropy(
    logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX, normalizer: Normalizer | None = None
) -> Tensor:
    """Mean pixel cross-entropy over valid pixels (0 when there is none)."""
    labels = labels.long()
    valid = (labels >= 0) & (labels < logits.shape[1])
    target = torch.where(valid, labels, torch.full_like(labels, ignore_index))
    total = F.cross_entropy(at_least_float32(logits), target, ignore_index=ignore_index, reduction="sum")
    count = valid.sum()
    count = count.clamp_min(1) if normalizer is None else normalizer(count)  # the normaliser clamps the global count
    return total / count.to(total.dtype)


def resize_labels(labels: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of a B×H×W label map (Y↓nearest)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def segmentation_loss(
    logits: Tensor,
    labels: Tensor,
    aux_logits: Tensor | None = None,
    aux_weight: float = AUX_WEIGHT,
    normalizer: Normalizer | None = None,
) -> Tensor:
    """L_seg = CE(P, Y) + 0.4·CE(P_aux, Y↓nearest) (docs/method.md §4); the aux term is skipped when ``aux_logits`` is
    None. ``logits`` are at the label's size, ``aux_logits`` at layer3's."""
    loss = cross_entropy(logits, labels, normalizer=normalizer)
    if aux_logits is not None:
        aux_labels = resize_labels(labels, aux_logits.shape[-2:])
        loss = loss + aux_weight * cross_entropy(aux_logits, aux_labels, normalizer=normalizer)
    return loss


def cohesion_loss(
    cosine: Tensor, labels: Tensor, temperature: float = 1.0, normalizer: Normalizer | None = None
) -> Tensor:
    """Feature cohesion L_coh (paper: −(1/|P|) Σ_p y_pᵀ log W_p, with W = softmax(s/τ) without Gumbel noise).

    Coded as CE between the cosine map s/τ (B×N×h×w), upsampled bilinearly (``align_corners=True``) to the
    label's size, and Y. Weighted by λ1 = 0.02 by the caller.
    """
    logits = cosine / temperature
    if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
        logits = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=True)
    return cross_entropy(logits, labels, normalizer=normalizer)


def memory_classification_loss(memory_hat: Tensor, classifier: torch.nn.Module) -> Tensor:
    """(1/N) Σ_n −log softmax(G(M̂_n))[n]: every slot must be classified as its own class by G."""
    targets = torch.arange(memory_hat.shape[0], device=memory_hat.device)
    return F.cross_entropy(at_least_float32(classifier(memory_hat)), targets)


def memory_repulsion(memory_hat: Tensor) -> Tensor:
    """(1/(N(N−1))) Σ_{n≠n'} max(M̂_n·M̂_{n'}, 0): mean positive cosine similarity between distinct slots."""
    n = memory_hat.shape[0]
    sim = (memory_hat @ memory_hat.t()).clamp_min(0)
    off_diag = sim.sum() - torch.diagonal(sim).sum()
    return off_diag / max(n * (n - 1), 1)


def divergence_loss(memory_hat: Tensor, classifier: torch.nn.Module, repulsion_weight: float = 2.0) -> Tensor:
    """Memory divergence L_div = (1/N) Σ_n −log G(M̂_n)[n] + 2 · Σ_{n≠n'} max(M̂_n·M̂_{n'}, 0) / (N(N−1)).

    Mapping to the paper's formula Σ_n −log G(M̂_n)[n] + 2·Σ_{n≠n'} max(·, 0)/(N(N−1)): the classification term
    is a *mean* over the N slots here (as in the released code), the repulsion term is identical. The released
    code's 0.2·CE + 0.4·repulsion is λ2·L_div with λ2 = 0.2 (``pinmem.lambda_div``), applied by the caller:
    L_update = λ2·L_div. G is the memory's ``classifier``; only the meta-train gradient should reach it.
    """
    return memory_classification_loss(memory_hat, classifier) + repulsion_weight * memory_repulsion(
        memory_hat
    )


def instance_covariance(feature: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-instance channel covariance Σ = w·wᵀ/(HW−1) + ε·I (B×C×C) of an instance-whitened map w (B×C×H×W).

    The map is already zero-mean per channel (instance normalisation), so it is not centred again (RobustNet).
    """
    b, c, h, w = feature.shape
    f = feature.float().reshape(b, c, h * w)
    cov = torch.bmm(f, f.transpose(1, 2)) / max(h * w - 1, 1)
    return cov + eps * torch.eye(c, device=feature.device, dtype=cov.dtype)


def whitening_loss(features: Sequence[Tensor], masks: Sequence[Tensor], eps: float = 1e-5) -> Tensor:
    """ISW loss L_isw = (1/L) Σ_l (1/B) Σ_b Σ|Σ_b^l ⊙ mask^l| / #sensitive^l (docs/method.md §6, RobustNet's margin 0).

    ``features``: the whitened maps of :attr:`SegmentationOutput.whitening_features`; ``masks``: one C×C 0/1
    (or bool) matrix per layer marking the style-sensitive strict-upper-triangle entries. Unweighted: the
    caller multiplies by ``isw.weight`` (0.6). Returns 0 with no layers.
    """
    if len(features) != len(masks):
        raise ValueError(f"{len(features)} whitened features but {len(masks)} masks")
    if not features:
        return torch.zeros(())
    terms = []
    for feat, mask in zip(features, masks, strict=True):
        mask = mask.to(device=feat.device, dtype=torch.float32)
        cov = instance_covariance(feat, eps)
        per_image = (cov * mask).abs().sum(dim=(1, 2)) / mask.sum().clamp_min(1)
        terms.append(per_image.mean())
    return torch.stack(terms).mean()
