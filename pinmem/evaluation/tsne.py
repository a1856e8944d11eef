"""t-SNE of the memory slots and of sampled pixel features, coloured by class (the paper's feature figure).

Pixel features are the model's F (the 256-channel map the memory reads), L2-normalised like the memory's
query q, sampled per class from labelled images (labels nearest-resized to F's size); the memory slots M are
embedded jointly with them and drawn as large outlined stars. Needs scikit-learn and matplotlib (optional
dependencies: ``pip install scikit-learn matplotlib``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pinmem.data.classes import CITYSCAPES, ClassSet, class_set_from
from pinmem.evaluation.plots import PlotDependencyError, pyplot


@dataclass
class FeatureSample:
    """``features`` P×C unit vectors with their ``classes`` (P), and the memory ``slots`` (N×C, unit rows of
    the slots that are non-zero; ``slot_classes`` their indices), or None for a model without memory."""

    features: np.ndarray
    classes: np.ndarray
    slots: np.ndarray | None = None
    slot_classes: np.ndarray | None = None
    #: names and colours of the classes (the dataset's; the Cityscapes ones by default)
    class_set: ClassSet = CITYSCAPES


@torch.no_grad()
def sample_features(
    model: nn.Module, dataset: Any, images: int = 10, per_class: int = 100, seed: int = 0,
    device: torch.device | str = "cpu",
) -> FeatureSample:
    """Up to ``per_class`` pixel features per class from the first ``images`` items of ``dataset``."""
    rng = np.random.default_rng(seed)
    model.eval().to(device)
    class_set = getattr(dataset, "class_set", CITYSCAPES)
    num_classes = int(getattr(model, "num_classes", len(class_set)))
    if len(class_set) != num_classes:
        class_set = class_set_from(None, None, num_classes)
    feats: dict[int, list[np.ndarray]] = {c: [] for c in range(num_classes)}
    for i in range(min(images, len(dataset))):
        item = dataset[i]
        out = model(item["image"].unsqueeze(0).to(device))
        if getattr(out, "feature", None) is None:
            raise PlotDependencyError("the model does not return features (expected a pinmem segmentation model)")
        f = F.normalize(out.feature.float(), dim=1)[0]  # C×h×w
        label = F.interpolate(item["label"][None, None].float(), size=f.shape[-2:], mode="nearest")[0, 0].long()
        flat, lab = f.reshape(f.shape[0], -1).t().cpu().numpy(), label.reshape(-1).cpu().numpy()
        for c in np.unique(lab):
            if c >= num_classes:
                continue
            idx = np.flatnonzero(lab == c)
            take = rng.choice(idx, size=min(per_class, idx.size), replace=False)
            feats[int(c)].append(flat[take])
    xs, ys = [], []
    for c, chunks in feats.items():
        if not chunks:
            continue
        all_c = np.concatenate(chunks)
        keep = rng.choice(all_c.shape[0], size=min(per_class, all_c.shape[0]), replace=False)
        xs.append(all_c[keep])
        ys.append(np.full(keep.size, c))
    if not xs:
        raise PlotDependencyError("no labelled pixels found in the images sampled for the t-SNE")
    slots = slot_classes = None
    memory = getattr(model, "memory", None)
    if memory is not None:
        m = memory.slots.detach().float().cpu()
        nonzero = m.norm(dim=1) > 0
        slots = F.normalize(m[nonzero], dim=1).numpy()
        slot_classes = np.flatnonzero(nonzero.numpy())
    return FeatureSample(np.concatenate(xs), np.concatenate(ys), slots, slot_classes, class_set)


def embed(sample: FeatureSample, perplexity: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """2-D t-SNE coordinates of the pixels and (jointly) of the slots."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        raise PlotDependencyError(
            "the t-SNE plot needs scikit-learn, which is not installed: pip install scikit-learn "
            "(or pip install 'pinmem[tsne]')"
        ) from err
    points = sample.features if sample.slots is None else np.concatenate([sample.features, sample.slots])
    if points.shape[0] < 5:
        raise PlotDependencyError(f"too few points for a t-SNE ({points.shape[0]}); sample more images")
    perplexity = min(perplexity, (points.shape[0] - 1) / 3)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    p = sample.features.shape[0]
    return xy[:p], (None if sample.slots is None else xy[p:])


def plot_tsne(sample: FeatureSample, path: str | Path, perplexity: float = 30.0, seed: int = 0,
              title: str | None = None) -> Path:
    """Scatter of the embedded pixels (dots) and memory slots (stars) in the class colours, PNG at ``path``."""
    pix, slots = embed(sample, perplexity, seed)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = np.asarray(sample.class_set.palette, dtype=np.float32).reshape(-1, 3) / 255.0
    for c in np.unique(sample.classes):
        sel = sample.classes == c
        ax.scatter(pix[sel, 0], pix[sel, 1], s=5, color=colours[c], alpha=0.6, label=sample.class_set.names[c])
    if slots is not None and sample.slot_classes is not None:
        ax.scatter(slots[:, 0], slots[:, 1], s=260, marker="*", c=colours[sample.slot_classes],
                   edgecolors="black", linewidths=1.2, label="memory slot", zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title or "t-SNE of pixel features and memory slots")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
