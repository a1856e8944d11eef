"""``evaluate(model, dataset, ...)``: one streamed confusion matrix over a dataset split (docs/method.md §8).

Images are read one by one (optionally by DataLoader workers) and grouped into batches of up to
``batch_size`` *consecutive images of the same size*; a size change flushes the batch. Only the running
confusion matrix is kept, so memory stays bounded whatever the number of images. The trainer calls this for
periodic validation (``progress=False``); ``pinmem eval`` calls it per target.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pinmem.data.labels import NUM_CLASSES
from pinmem.errors import ConfigError
from pinmem.evaluation.metrics import ConfusionMatrix, SegmentationMetrics
from pinmem.evaluation.sliding import MODES, infer, target_batchnorm

AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class EvalSettings:
    """How predictions were made; stored beside every number (docs/method.md §8: say which mode a number used)."""

    mode: str = "whole"
    flip: bool = False
    crop: int = 768
    stride: int = 512
    target_bn: bool = False
    amp: str = "none"
    pad: bool = False

    def describe(self) -> str:
        text = "whole image" if self.mode == "whole" else f"sliding {self.crop}² windows, stride {self.stride}"
        if self.mode == "slide" and self.pad:
            text += ", small images padded"
        text += ", single scale" + (", + horizontal flip" if self.flip else ", no flip")
        if self.target_bn:
            text += ", target-batch BN statistics"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "flip": self.flip, "crop": self.crop, "stride": self.stride,
                "target_bn": self.target_bn, "amp": self.amp, "pad": self.pad, "description": self.describe()}


@dataclass
class EvalResult:
    """Result of :func:`evaluate` on one dataset split.

    ``metrics`` holds fractions in [0, 1] (``miou``, ``iou`` …); ``confusion`` the raw counts.
    """

    confusion: ConfusionMatrix
    metrics: SegmentationMetrics
    settings: EvalSettings
    num_images: int
    dataset: str = ""
    split: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def miou(self) -> float:
        return self.metrics.miou

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "num_images": self.num_images,
            **self.metrics.to_dict(),
            **self.settings.to_dict(),
            "seconds": round(self.seconds, 3),
            "confusion_matrix": self.confusion.matrix.tolist(),
            **self.extra,
        }


def merge_results(results: Sequence[EvalResult]) -> EvalResult:
    """Combine shards of one split (e.g. from several ranks): confusion matrices and image counts add."""
    if not results:
        raise ValueError("merge_results needs at least one result")
    total = ConfusionMatrix.sum((r.confusion for r in results), results[0].confusion.num_classes)
    first = results[0]
    return EvalResult(total, total.metrics(), first.settings, sum(r.num_images for r in results), first.dataset,
                      first.split, max(r.seconds for r in results), dict(first.extra))


def _batches(items: Iterable[dict[str, Any]], batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Stack consecutive same-size samples into batches of at most ``batch_size``."""
    images: list[Tensor] = []
    labels: list[Tensor] = []
    for item in items:
        image, label = item["image"], item["label"]
        if image.ndim == 4:  # already batched (a DataLoader with batch_size=1)
            image, label = image[0], label[0]
        if images and (image.shape != images[0].shape or len(images) >= batch_size):
            yield torch.stack(images), torch.stack(labels)
            images, labels = [], []
        images.append(image)
        labels.append(label)
    if images:
        yield torch.stack(images), torch.stack(labels)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _iterate(dataset: Any, num_workers: int) -> Iterable[dict[str, Any]]:
    if num_workers > 0:
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers)
    return (dataset[i] for i in range(len(dataset)))


def evaluate(
    model: nn.Module,
    dataset: Any,
    mode: str = "whole",
    flip: bool = False,
    crop: int = 768,
    stride: int = 512,
    batch_size: int = 1,
    target_bn: bool = False,
    device: torch.device | str | None = None,
    amp: str = "none",
    progress: bool = False,
    num_workers: int = 0,
    num_classes: int = NUM_CLASSES,
    name: str | None = None,
    pad: bool = False,
) -> EvalResult:
    """Score ``model`` on ``dataset`` (items: dicts with a normalised ``image`` 3×H×W and ``label`` H×W trainIds).

    Args:
        mode: ``whole`` (one forward per image) or ``slide`` (``crop``² windows every ``stride`` pixels, logits
            averaged over overlaps; ``pad``: pad images smaller than a window instead of shrinking the window);
            see :mod:`pinmem.evaluation.sliding`.
        flip: also average the logits of the horizontally flipped image.
        batch_size: images per forward in ``whole`` mode (consecutive images of equal size only), windows per
            forward in ``slide`` mode.
        target_bn: BatchNorm uses the statistics of the current batch (TSMLDG); running stats are kept.
        device: where to run; default: where the model's parameters are. The model is moved if needed.
        amp: ``none``, ``bf16`` or ``fp16`` autocast (the logits are accumulated in float32).
        progress: show a tqdm bar over images.
        num_workers: DataLoader worker processes reading images (0: read in this process).

    The model is put in eval mode for the pass and its previous train/eval state is restored afterwards.
    """
    if mode not in MODES:
        raise ConfigError(f"evaluation mode must be one of {', '.join(MODES)}, got {mode!r}")
    if amp not in AMP_MODES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if batch_size < 1 or crop < 1 or stride < 1:
        raise ConfigError(f"batch_size, crop and stride must be positive (got {batch_size}, {crop}, {stride})")
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    dtype = next(model.parameters()).dtype  # float32, or float64 for a model trained with train.dtype=float64
    settings = EvalSettings(mode, bool(flip), int(crop), int(stride), bool(target_bn), amp, bool(pad))
    confusion = ConfusionMatrix(num_classes)
    was_training = model.training
    start = time.perf_counter()
    count = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc=f"eval {name or getattr(dataset, 'name', '')}".rstrip(), unit="img")
    try:
        model.eval()
        norm_ctx = target_batchnorm(model) if target_bn else contextlib.nullcontext()
        with norm_ctx, torch.no_grad():
            for images, labels in _batches(_iterate(dataset, num_workers), batch_size):
                images = images.to(device, dtype, non_blocking=True)
                with _autocast(device, amp):
                    out = infer(model, images, mode, flip, crop, stride, batch_size, pad=pad)
                confusion.update(out.logits.argmax(1), labels.to(device, non_blocking=True))
                count += images.shape[0]
                if bar is not None:
                    bar.update(images.shape[0])
                    bar.set_postfix_str(f"mIoU {100 * _running_miou(confusion):.1f}")
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return EvalResult(confusion, confusion.metrics(), settings, count, name or getattr(dataset, "name", ""),
                      getattr(dataset, "split", ""), seconds)


def _running_miou(confusion: ConfusionMatrix) -> float:
    value = confusion.metrics().miou
    return 0.0 if math.isnan(value) else value
