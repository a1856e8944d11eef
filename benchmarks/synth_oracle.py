"""The street world's domain gap with a small proxy network: ERM on the sources against an oracle on a target.

docs/synth.md, "The domain gap": a 9-layer CNN trained from scratch for ``--steps`` steps of ``--batch`` images at
``--size`` (128×64) — once on the ``gtav`` + ``synthia`` styles (ERM, half the batch from each) and once on the
``cityscapes`` style alone (the oracle, trained on the target) — each scored on the val splits of the six styles,
whole image at native size (the world's protocol). A gap between the sources' val mIoU and the targets' for ERM,
with the oracle reaching the sources' level on its own domain, says the targets are different yet learnable.

    python benchmarks/synth_oracle.py                                   # writes results/measurements/synth_oracle.json
    python benchmarks/synth_oracle.py --steps 200 --train-num 100 --val-num 30 --out /tmp/quick.json

The world is written once into ``--work`` (reused when its parameters match). The oracle gets as many distinct
training scenes as ERM (``2 × --train-num`` cityscapes scenes). One thread, seed 0, Adam lr 1e-3, random flips.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import REPO, add_allow_dirty_argument, finish_record, start_record  # noqa: E402

from pinmem.data import build_dataset  # noqa: E402
from pinmem.data.labels import IGNORE, NUM_CLASSES  # noqa: E402
from pinmem.evaluation import evaluate  # noqa: E402
from pinmem.synth.world import generate_world  # noqa: E402

STYLES = ("gtav", "synthia", "cityscapes", "bdd100k", "mapillary", "idd")
SOURCES = ("gtav", "synthia")
ORACLE = "cityscapes"
#: (output channels, stride, dilation) of the eight 3×3 conv + BN + ReLU layers; a 1×1 classifier is the ninth
LAYERS = ((16, 1, 1), (32, 2, 1), (32, 1, 1), (64, 2, 1), (64, 1, 1), (64, 2, 1), (64, 1, 2), (64, 1, 4))


class ProxyCNN(nn.Module):
    """Nine layers, output stride 8, logits bilinearly upsampled to the input size."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out, stride, dilation in LAYERS:
            layers += [nn.Conv2d(channels, out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.classifier(self.body(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


def load_split(root: Path, name: str, split: str) -> tuple[Tensor, Tensor]:
    """Every image (normalised) and label of a split, stacked (the world's scenes of one style share a size)."""
    dataset = build_dataset(name, root, split)
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items]).long()


def train(pools: list[tuple[Tensor, Tensor]], steps: int, batch: int, seed: int) -> ProxyCNN:
    """``steps`` Adam steps; each batch takes ``batch / len(pools)`` random images from every pool, flipped at
    random."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    model = ProxyCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    per_pool = batch // len(pools)
    model.train()
    for _ in range(steps):
        images, labels = [], []
        for pool_images, pool_labels in pools:
            index = torch.from_numpy(generator.choice(len(pool_images), per_pool, replace=len(pool_images) < per_pool))
            images.append(pool_images[index])
            labels.append(pool_labels[index])
        x, y = torch.cat(images), torch.cat(labels)
        flip = torch.from_numpy(generator.random(len(x)) < 0.5)
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = F.cross_entropy(model(x), y, ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", default="128x64", help="scene size WxH (mapillary renders 1.5x larger)")
    parser.add_argument("--train-num", type=int, default=300, help="train scenes per source style")
    parser.add_argument("--val-num", type=int, default=100, help="val scenes per style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "synth_oracle", help="where the world is written")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default results/measurements/synth_oracle.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = start_record("synth_oracle", argv, allow_dirty=args.allow_dirty)
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = {s: (args.train_num if s in SOURCES else 2 * args.train_num if s == ORACLE else 0) for s in STYLES}
    start = time.perf_counter()
    roots = generate_world(args.work / "world", STYLES, counts, args.val_num, (width, height), seed=0,
                           progress=False)
    world_s = time.perf_counter() - start
    train_sets = {s: load_split(roots[s], s, "train") for s in (*SOURCES, ORACLE)}
    rows: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {"world": round(world_s, 1)}
    for label, pools in (("gtav + synthia (ERM)", [train_sets[s] for s in SOURCES]),
                         (f"{ORACLE} (oracle)", [train_sets[ORACLE]])):
        start = time.perf_counter()
        model = train(pools, args.steps, args.batch, args.seed)
        seconds[label] = round(time.perf_counter() - start, 1)
        rows[label] = {s: round(100 * evaluate(model, build_dataset(s, roots[s], "val"), batch_size=8).miou, 1)
                       for s in STYLES}
        print(f"{label:<22s} " + "  ".join(f"{s} {v:5.1f}" for s, v in rows[label].items()), flush=True)
    lines = ["| trained on | " + " | ".join(f"{s} val" if s in SOURCES else s for s in STYLES) + " |",
             "|---" * (len(STYLES) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(f"{v:.1f}" for v in row.values()) + " |" for label, row in rows.items()]
    print("\n".join(lines))
    results = {"miou": rows, "markdown": lines, "seconds": seconds, "steps": args.steps, "batch": args.batch,
               "size": f"{width}x{height}", "train_scenes": {s: c for s, c in counts.items() if c},
               "val_scenes": args.val_num, "network": f"ProxyCNN {LAYERS} + 1x1 classifier",
               "evaluation": "whole image at native size (the world's protocol)"}
    finish_record(record, results, args.out)
    return results


if __name__ == "__main__":
    main()
