"""ISW / RobustNet (Choi et al., 2021) as the released code builds it (docs/method.md §6).

ERM on a backbone with instance whitening (``model.norm=isw``). After epoch ``isw.start_epoch`` a covariance
stage finds the *style-sensitive* covariance entries: ``isw.trials`` trials of ``isw.images_per_trial`` images
per source, each image paired with a colour-jittered copy; per-instance covariance Σ of every whitened map;
the variance of each strict-upper-triangle entry across the pair, averaged over the images; a 1-D k-means with
``isw.clusters`` clusters over the entries; the entries outside the lowest-variance cluster are sensitive. The
masks are AND-ed over trials and datasets. From then on the loss adds ``isw.weight`` · L_isw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pinmem.data.base import SegmentationDataset
from pinmem.data.transforms import TrainTransform
from pinmem.methods.base import Batch, eval_mode
from pinmem.methods.erm import ERM
from pinmem.models.losses import instance_covariance, whitening_loss


def kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 50) -> np.ndarray:
    """Cluster labels of a 1-D k-means (centres initialised at evenly spaced quantiles), 0 = lowest centre."""
    centres = np.quantile(values, np.linspace(0.0, 1.0, clusters + 2)[1:-1])
    for _ in range(iterations):
        labels = np.abs(values[:, None] - centres[None, :]).argmin(1)
        new = np.array([values[labels == k].mean() if np.any(labels == k) else centres[k] for k in range(clusters)])
        if np.allclose(new, centres):
            break
        centres = new
    order = np.argsort(centres)
    return np.argsort(order)[np.abs(values[:, None] - centres[None, :]).argmin(1)]


def sensitive_mask(variance: Tensor, clusters: int) -> Tensor:
    """C×C bool: strict-upper-triangle entries outside the lowest-variance k-means cluster."""
    c = variance.shape[0]
    rows, cols = torch.triu_indices(c, c, offset=1)
    labels = kmeans_1d(variance[rows, cols].double().cpu().numpy(), clusters)
    mask = torch.zeros(c, c, dtype=torch.bool)
    chosen = torch.from_numpy(labels != 0)
    mask[rows[chosen], cols[chosen]] = True
    return mask


class ISW(ERM):
    name = "isw"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks: list[Tensor] = []
        self.datasets: Sequence[SegmentationDataset] = []
        self.iterations_per_epoch = 1

    def attach_data(self, datasets: Sequence[SegmentationDataset], iterations_per_epoch: int) -> None:
        """The source training sets the covariance stage draws from (the trainer calls this)."""
        self.datasets, self.iterations_per_epoch = datasets, iterations_per_epoch

    @property
    def start_iteration(self) -> int:
        return self.config.isw.start_epoch * self.iterations_per_epoch

    def before_step(self, iteration: int) -> None:
        if not self.masks and iteration >= self.start_iteration and self.datasets:
            self.masks = self.estimate_masks()

    def step(self, batch: Batch, iteration: int, lr: float) -> dict[str, Tensor]:
        x, y = self.inputs(batch, list(batch))
        out = self.model(x)
        seg = self.seg_loss(out, y)
        if not self.masks:
            seg.backward()
            return {"seg": seg.detach()}
        isw = self.config.isw.weight * whitening_loss(out.whitening_features, self.masks)
        (seg + isw).backward()
        return {"seg": seg.detach(), "isw": isw.detach()}

    @torch.no_grad()
    def pair_variance(self, dataset: SegmentationDataset, indices: Sequence[int], seed: int) -> list[Tensor]:
        """Per layer, the mean over images of the variance of each covariance entry across (image, jittered)."""
        crop = self.config.train.crop_size
        plain = TrainTransform(crop_size=crop, scale_range=(1.0, 1.0), jitter=None, blur_sigma=None, flip_p=0.0)
        styled = TrainTransform(crop_size=crop, scale_range=(1.0, 1.0), strong_jitter=True, flip_p=0.0)
        sums: list[Tensor] = []
        device = self.context.device
        for n, index in enumerate(indices):
            image, label = dataset.load_pair(index)
            pair_seed = seed * 1_000_003 + n
            x = torch.stack([plain(image, label, pair_seed)[0], styled(image, label, pair_seed)[0]]).to(device)
            feats = self.model.backbone.forward_features(x).whitened
            for layer, feat in enumerate(feats):
                cov = instance_covariance(feat)  # 2×C×C
                var = (cov[0] - cov[1]).pow(2) / 4  # variance of two values (population)
                if len(sums) <= layer:
                    sums.append(torch.zeros_like(var))
                sums[layer] += var
        return [s / max(len(indices), 1) for s in sums]

    def estimate_masks(self) -> list[Tensor]:
        """The covariance stage: masks AND-ed over trials and source datasets (same on every rank)."""
        cfg = self.config.isw
        masks: list[Tensor] | None = None
        with eval_mode(self.model):
            for trial in range(cfg.trials):
                for d, dataset in enumerate(self.datasets):
                    rng = np.random.default_rng([self.config.train.seed, trial, d, 0x15])
                    count = min(cfg.images_per_trial, len(dataset))
                    indices = rng.choice(len(dataset), size=count, replace=False).tolist()
                    variances = self.pair_variance(dataset, indices, seed=trial * 1000 + d)
                    variances = [self.context.sum_(v) / self.context.world_size for v in variances]
                    trial_masks = [sensitive_mask(v, cfg.clusters) for v in variances]
                    masks = trial_masks if masks is None else [a & b for a, b in zip(masks, trial_masks, strict=True)]
        return [m.to(self.context.device) for m in masks or []]

    def state_dict(self) -> dict[str, Any]:
        return {"masks": [m.cpu() for m in self.masks]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.masks = [m.to(self.context.device) for m in state.get("masks", [])]
