"""What the memory of a trained Pin the Memory checkpoint does, on source and target images of the street world.

    python benchmarks/memory_diagnostics.py runs/street/<budget>/pinmem-main-s304/checkpoints/last.pt \
        --world runs/street/world --out results/street/<budget>/diagnostics/pinmem-main-s304

Writes ``diagnostics.json`` and ``read_maps.png``. Per domain (val split, whole image):

- ``read``: the read weights W = softmax((s + g)/τ) — entropy (nats; log N is uniform), the largest weight,
  with and without the Gumbel noise g (std 1.28, more than the whole range of s: see ``cosine.min/max``).
- ``cosine``: s of the pixel's ground-truth class minus the best other slot (the prototype margin).
- ``nearest_prototype``: argmax_n s as a classifier of F (pixel accuracy and mIoU at F's size), beside the
  network's own prediction at the same size — is M a good class prototype on this domain?
- ``memory_use``: mIoU with the real memory, with every slot replaced by the mean slot (the read then returns
  the same vector at every pixel: what the class-dependent part of the read carries) and with M = 0 (nothing
  read). Permuting the slots would test nothing: r = Σ_n W_n M_n with W_n = softmax(q·M_n) is invariant to any
  permutation of M's rows; slot identity matters only to L_coh and G.
- ``cosine.min`` / ``cosine.max``: the range of s. F and Z both come out of a ReLU, so q and M are non-negative and
  s ∈ [0, 1]; with τ = 1 even a one-hot s gives W at most e/(e + N − 1) ≈ 0.131 and entropy ≈ 2.90 nats
  (N = 19), against log N = 2.944 for a uniform read (``read.entropy_floor``, at the model's τ,
  ``pinmem.temperature``).
- ``slots``: cosine similarity between memory slots (mean and max off the diagonal).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, provenance  # noqa: E402

from pinmem.data import build_dataset  # noqa: E402
from pinmem.data.labels import colorize  # noqa: E402
from pinmem.evaluation.metrics import ConfusionMatrix  # noqa: E402
from pinmem.training.checkpoint import load_model  # noqa: E402

DOMAINS = ("gtav", "synthia", "cityscapes", "bdd100k", "mapillary")


def entropy(weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy (nats) of B×N×h×w weights."""
    return -(weights.clamp_min(1e-12).log() * weights).sum(1)


def entropy_floor(n: int, temperature: float = 1.0) -> float:
    """Entropy of softmax(s/τ) for a one-hot s ∈ [0, 1]^N: the most peaked read cosine similarities in [0, 1] allow."""
    w = torch.softmax(torch.eye(n)[0] / temperature, dim=0)
    return float(-(w * w.log()).sum())


@torch.no_grad()
def diagnose_domain(model: torch.nn.Module, dataset: Any, limit: int) -> dict[str, Any]:
    memory = model.memory
    n = memory.num_slots
    slots = memory.slots.clone()
    stats: dict[str, list[float]] = {k: [] for k in ("H", "H_gumbel", "wmax", "wmax_gumbel", "margin", "smin", "smax")}
    proto = ConfusionMatrix(n)
    net_small = ConfusionMatrix(n)
    use = {k: ConfusionMatrix(n) for k in ("memory", "mean_slot", "zero")}
    mean_slot = F.normalize(slots.mean(0, keepdim=True), dim=1).expand_as(slots).contiguous()
    for i in range(min(limit, len(dataset))):
        item = dataset[i]
        x, y = item["image"][None], item["label"][None]
        out = model(x)
        w, s = out.read_weights, out.cosine
        memory.gumbel_eval = True
        torch.manual_seed(i)
        noisy = model(x).read_weights
        memory.gumbel_eval = False
        small = F.interpolate(y[:, None].float(), size=s.shape[-2:], mode="nearest")[:, 0].long()
        valid = small < n
        stats["H"].append(float(entropy(w)[valid].mean()))
        stats["H_gumbel"].append(float(entropy(noisy)[valid].mean()))
        stats["wmax"].append(float(w.amax(1)[valid].mean()))
        stats["wmax_gumbel"].append(float(noisy.amax(1)[valid].mean()))
        gt = s.gather(1, small.clamp(max=n - 1)[:, None])[:, 0]
        others = s.masked_fill(F.one_hot(small.clamp(max=n - 1), n).permute(0, 3, 1, 2).bool(), -2).amax(1)
        stats["margin"].append(float((gt - others)[valid].mean()))
        stats["smin"].append(float(s.min()))
        stats["smax"].append(float(s.max()))
        proto.update(s.argmax(1), small)
        logits_small = F.interpolate(out.logits, size=s.shape[-2:], mode="bilinear", align_corners=True)
        net_small.update(logits_small.argmax(1), small)
        use["memory"].update(out.logits.argmax(1), y)
        use["mean_slot"].update(model(x, memory=mean_slot).logits.argmax(1), y)
        use["zero"].update(model(x, memory=torch.zeros_like(slots)).logits.argmax(1), y)
    pm, nm = proto.metrics(), net_small.metrics()
    return {
        "images": min(limit, len(dataset)),
        "read": {"entropy": float(np.mean(stats["H"])), "entropy_gumbel": float(np.mean(stats["H_gumbel"])),
                 "uniform_entropy": math.log(n), "max_weight": float(np.mean(stats["wmax"])),
                 "max_weight_gumbel": float(np.mean(stats["wmax_gumbel"])),
                 "entropy_floor": entropy_floor(n, memory.temperature), "temperature": memory.temperature},
        "cosine": {"gt_minus_best_other": float(np.mean(stats["margin"])), "min": float(np.min(stats["smin"])),
                   "max": float(np.max(stats["smax"]))},
        "nearest_prototype": {"pixel_accuracy": 100 * pm.pixel_accuracy, "miou": 100 * pm.miou,
                              "network_pixel_accuracy": 100 * nm.pixel_accuracy, "network_miou": 100 * nm.miou},
        "memory_use": {k: 100 * v.metrics().miou for k, v in use.items()},
    }


def slot_similarity(slots: torch.Tensor) -> dict[str, float]:
    seen = slots.norm(dim=1) > 0
    m = F.normalize(slots[seen], dim=1)
    sim = m @ m.t()
    off = sim[~torch.eye(len(m), dtype=torch.bool)]
    return {"slots_seen": int(seen.sum()), "mean_offdiag_cosine": float(off.mean()),
            "max_offdiag_cosine": float(off.max())}


@torch.no_grad()
def read_maps(model: torch.nn.Module, datasets: dict[str, Any], path: Path) -> None:
    """Per domain, one val image: image | ground truth | argmax_n s (nearest prototype) | entropy of W."""
    from pinmem.evaluation.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(datasets), 4, figsize=(12, 1.6 * len(datasets)))
    for row, (name, ds) in zip(axes, datasets.items(), strict=True):
        image, label = ds.load_pair(0)
        out = model(ds[0]["image"][None])
        panels = [image, colorize(label), colorize(out.cosine.argmax(1)[0].numpy().astype(np.uint8)),
                  entropy(out.read_weights)[0].numpy()]
        titles = [name, "ground truth", "nearest prototype", "read entropy"]
        for ax, panel, title in zip(row, panels, titles, strict=True):
            ax.imshow(panel, vmin=None if title != "read entropy" else 0,
                      vmax=None if title != "read entropy" else math.log(model.memory.num_slots))
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--world", type=Path, default=Path("runs/street/world"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=40, help="val images per domain")
    parser.add_argument("--threads", type=int, default=2)
    add_allow_dirty_argument(parser)
    args = parser.parse_args()
    code = provenance(args.allow_dirty)  # refused before measuring, not after
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint).model
    if model.memory is None:
        raise SystemExit(f"{args.checkpoint} has no memory module")
    datasets = {d: build_dataset(d, args.world / d, "val") for d in DOMAINS}
    report = {**code, "checkpoint": str(args.checkpoint), "slots": slot_similarity(model.memory.slots),
              "domains": {d: diagnose_domain(model, ds, args.images) for d, ds in datasets.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diagnostics.json").write_text(json.dumps(report, indent=1))
    read_maps(model, datasets, args.out / "read_maps.png")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
