"""Streamed confusion matrix and the segmentation scores derived from it (docs/method.md §8).

One :class:`ConfusionMatrix` per dataset split collects ``matrix[gt, pred]`` pixel counts over every pixel with
``0 <= gt < num_classes``; ignore (255) and any other out-of-range ground truth are dropped. From it:

- IoU_c = TP / (TP + FP + FN); a class absent from both the ground truth and the predictions has no IoU (NaN),
- mIoU = mean of the defined IoUs (NaN-mean), so such a class is excluded rather than counted as 0 or 1,
- pixel accuracy = trace / total.

Matrices add (``a + b`` or :meth:`ConfusionMatrix.merge`), so shards evaluated on different processes combine
exactly: all-reduce :attr:`ConfusionMatrix.matrix` (as a tensor) and build the metrics from the sum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pinmem.data.labels import CLASSES, NUM_CLASSES


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def confusion_counts(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, num_classes: int = NUM_CLASSES
) -> torch.Tensor:
    """``num_classes``×``num_classes`` int64 counts ``[gt, pred]`` of one batch (on the inputs' device).

    ``pred`` and ``gt`` are integer maps of the same shape. Pixels whose ground truth is outside
    ``0..num_classes-1`` (ignore 255 included) are dropped; a prediction outside that range is an error.
    """
    pred_t, gt_t = _as_tensor(pred), _as_tensor(gt)
    if pred_t.shape != gt_t.shape:
        raise ValueError(f"prediction shape {tuple(pred_t.shape)} != ground truth shape {tuple(gt_t.shape)}")
    gt_t = gt_t.to(pred_t.device).long().reshape(-1)
    pred_t = pred_t.long().reshape(-1)
    valid = (gt_t >= 0) & (gt_t < num_classes)
    gt_t, pred_t = gt_t[valid], pred_t[valid]
    if pred_t.numel() and (int(pred_t.min()) < 0 or int(pred_t.max()) >= num_classes):
        raise ValueError(f"predictions must lie in 0..{num_classes - 1}, got values "
                         f"{int(pred_t.min())}..{int(pred_t.max())}")
    counts = torch.bincount(gt_t * num_classes + pred_t, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _clean(value: float) -> float | None:
    """JSON has no NaN: undefined scores are written as null."""
    return None if value is None or math.isnan(value) else float(value)


@dataclass
class SegmentationMetrics:
    """Scores of one confusion matrix. IoUs and accuracies are fractions in [0, 1]; NaN where undefined.

    Attributes:
        iou: per-class IoU (NaN for a class absent from both ground truth and prediction).
        miou: NaN-mean of ``iou``.
        pixel_accuracy: correctly labelled pixels / valid pixels.
        class_accuracy: per-class recall TP / (TP + FN) (NaN for a class absent from the ground truth).
        mean_class_accuracy: NaN-mean of ``class_accuracy``.
        gt_pixels, pred_pixels: per-class pixel counts of the ground truth and the prediction.
        num_pixels: valid pixels counted.
        classes: class names, in trainId order.
    """

    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    class_accuracy: np.ndarray
    mean_class_accuracy: float
    gt_pixels: np.ndarray
    pred_pixels: np.ndarray
    num_pixels: int
    classes: tuple[str, ...] = field(default=CLASSES)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per-class values keyed by class name, NaN as ``None``."""
        return {
            "miou": _clean(self.miou),
            "pixel_accuracy": _clean(self.pixel_accuracy),
            "mean_class_accuracy": _clean(self.mean_class_accuracy),
            "iou": {c: _clean(v) for c, v in zip(self.classes, self.iou.tolist(), strict=True)},
            "class_accuracy": {c: _clean(v) for c, v in zip(self.classes, self.class_accuracy.tolist(), strict=True)},
            "gt_pixels": {c: int(v) for c, v in zip(self.classes, self.gt_pixels.tolist(), strict=True)},
            "pred_pixels": {c: int(v) for c, v in zip(self.classes, self.pred_pixels.tolist(), strict=True)},
            "num_pixels": int(self.num_pixels),
        }


def metrics_from_matrix(matrix: np.ndarray, classes: tuple[str, ...] | None = None) -> SegmentationMetrics:
    """IoU, mIoU and accuracies of a ``[gt, pred]`` confusion matrix (docs/method.md §8)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    n = m.shape[0]
    classes = classes or (CLASSES if n == NUM_CLASSES else tuple(f"class {i}" for i in range(n)))
    tp = np.diag(m)
    gt, pred = m.sum(axis=1), m.sum(axis=0)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        recall = np.where(gt > 0, tp / gt, np.nan)
    total = m.sum()
    return SegmentationMetrics(
        iou=iou,
        miou=_nanmean(iou),
        pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
        class_accuracy=recall,
        mean_class_accuracy=_nanmean(recall),
        gt_pixels=gt.astype(np.int64),
        pred_pixels=pred.astype(np.int64),
        num_pixels=int(total),
        classes=tuple(classes),
    )


class ConfusionMatrix:
    """Streamed ``[gt, pred]`` pixel counts (int64). Updates stay on the device of the first batch.

    >>> cm = ConfusionMatrix()
    >>> cm.update(logits.argmax(1), labels)      # any batch shape; 255 ignored
    >>> cm.metrics().miou
    """

    def __init__(self, num_classes: int = NUM_CLASSES, matrix: np.ndarray | torch.Tensor | None = None,
                 classes: tuple[str, ...] | None = None) -> None:
        self.num_classes = int(num_classes)
        #: class names for :meth:`metrics` (None: the Cityscapes names for 19 classes, else ``class i``)
        self.classes = tuple(classes) if classes and len(classes) == self.num_classes else None
        self._counts: torch.Tensor | None = None
        if matrix is not None:
            counts = _as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)
            if tuple(counts.shape) != (self.num_classes, self.num_classes):
                raise ValueError(f"matrix of shape {tuple(counts.shape)} for {self.num_classes} classes")
            self._counts = counts.to(torch.int64).clone()

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Add one batch of predictions (class indices) and ground truth of the same shape."""
        counts = confusion_counts(pred, gt, self.num_classes)
        self._counts = counts if self._counts is None else self._counts + counts.to(self._counts.device)

    @property
    def matrix(self) -> np.ndarray:
        """The counts as an int64 numpy array (rows: ground truth, columns: prediction)."""
        if self._counts is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self._counts.cpu().numpy().astype(np.int64)

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The counts as an int64 tensor (e.g. for ``torch.distributed.all_reduce``)."""
        t = torch.from_numpy(self.matrix) if self._counts is None else self._counts
        return t.to(device) if device is not None else t

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """A new matrix holding the sum of both (they must have the same number of classes)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {self.num_classes}- and {other.num_classes}-class matrices")
        return ConfusionMatrix(self.num_classes, self.matrix + other.matrix, self.classes or other.classes)

    __add__ = merge

    @classmethod
    def sum(cls, matrices: Iterable[ConfusionMatrix], num_classes: int = NUM_CLASSES,
            classes: tuple[str, ...] | None = None) -> ConfusionMatrix:
        total = cls(num_classes, classes=classes)
        for m in matrices:
            total = total.merge(m)
        return total

    def metrics(self, classes: tuple[str, ...] | None = None) -> SegmentationMetrics:
        return metrics_from_matrix(self.matrix, classes or self.classes)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.matrix.sum())})"
