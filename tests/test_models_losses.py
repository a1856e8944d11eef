"""Losses (docs/method.md §4, §6) against direct computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pinmem.models.losses import (
    cohesion_loss,
    cross_entropy,
    divergence_loss,
    instance_covariance,
    memory_repulsion,
    segmentation_loss,
    whitening_loss,
)


def test_segmentation_loss_main_plus_weighted_aux() -> None:
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    y = torch.randint(0, 4, (2, 8, 8))
    y[0, 0] = 255
    y_small = y[:, ::2, ::2]  # nearest at scale 1/2 picks the top-left pixel
    expected = F.cross_entropy(logits, y, ignore_index=255) + 0.4 * F.cross_entropy(
        aux, y_small, ignore_index=255
    )
    assert segmentation_loss(logits, y, aux).item() == pytest.approx(expected.item(), rel=1e-6)
    assert segmentation_loss(logits, y).item() == pytest.approx(
        F.cross_entropy(logits, y, ignore_index=255).item()
    )


def test_cross_entropy_all_ignored_is_zero() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)


def test_cohesion_loss_is_ce_of_upsampled_cosine() -> None:
    torch.manual_seed(0)
    s = torch.rand(2, 3, 4, 4) * 2 - 1
    y = torch.randint(0, 3, (2, 13, 13))
    up = F.interpolate(s / 0.5, size=(13, 13), mode="bilinear", align_corners=True)
    assert cohesion_loss(s, y, temperature=0.5).item() == pytest.approx(
        F.cross_entropy(up, y).item(), rel=1e-6
    )


def test_divergence_loss_matches_formula() -> None:
    torch.manual_seed(0)
    n, c = 4, 6
    m = F.normalize(torch.randn(n, c), dim=1)
    g = torch.nn.Linear(c, n)
    with torch.no_grad():
        ce = sum(-torch.log_softmax(g(m[i]), 0)[i] for i in range(n)) / n
    rep = sum(max(float(m[i] @ m[j]), 0.0) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    assert divergence_loss(m, g).detach().item() == pytest.approx(float(ce) + 2 * rep, rel=1e-5)
    assert memory_repulsion(torch.eye(3)).item() == 0  # orthogonal slots are not pushed apart
    assert memory_repulsion(torch.ones(3, 2) / math.sqrt(2)).item() == pytest.approx(1.0)


def test_whitening_loss_matches_masked_covariance() -> None:
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 4, 5), torch.randn(2, 4, 3, 3)]
    masks = [torch.tensor([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), torch.ones(4, 4).triu(1).bool()]
    per_layer = []
    for f, mask in zip(feats, masks, strict=True):
        vals = []
        for b in range(2):
            w = f[b].reshape(f.shape[1], -1)
            cov = w @ w.t() / (w.shape[1] - 1) + 1e-5 * torch.eye(f.shape[1])
            vals.append((cov * mask.float()).abs().sum() / mask.float().sum())
        per_layer.append(sum(vals) / 2)
    expected = sum(per_layer) / 2
    assert whitening_loss(feats, masks).item() == pytest.approx(float(expected), rel=1e-5)
    assert instance_covariance(feats[0]).shape == (2, 3, 3)
    assert whitening_loss([], []).item() == 0
