"""``evaluate(model, dataset, settings)``: one streamed confusion matrix over a dataset split (docs/method.md §8).

Images are read one by one (optionally by DataLoader workers) and grouped into batches of up to
``settings.batch_size`` *consecutive images of the same size*; a size change flushes the batch. Only the running
confusion matrix is kept, so memory stays bounded whatever the number of images. The trainer calls this for
periodic validation (``progress=False``); ``pinmem eval`` calls it per target. Shards of one split (several
ranks, several processes) are combined with :func:`merge_results`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from pinmem.data.labels import NUM_CLASSES
from pinmem.evaluation.inference import InferenceSettings, infer
from pinmem.evaluation.metrics import ConfusionMatrix, SegmentationMetrics
from pinmem.runtime import model_device, resolve_device


@dataclass
class EvalResult:
    """Result of :func:`evaluate` on one dataset split.

    ``metrics`` holds fractions in [0, 1] (``miou``, ``iou`` …); ``confusion`` the raw counts.
    """

    confusion: ConfusionMatrix
    metrics: SegmentationMetrics
    settings: InferenceSettings
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


def merge_results(results: Sequence[EvalResult], reduce: Callable[[Tensor], Tensor] | None = None) -> EvalResult:
    """Combine shards of one split: confusion matrices and image counts add (exactly: they are counts).

    ``results`` are the shards this process holds. ``reduce``, for shards spread over ranks, is called once with
    an int64 CPU tensor (the K×K counts flattened, then the number of images) and must return its sum over the
    ranks (e.g. ``lambda t: context.sum_(t.to(context.device))``); every rank then gets the whole split's result.
    """
    if not results:
        raise ValueError("merge_results needs at least one result")
    first = results[0]
    total = ConfusionMatrix.sum((r.confusion for r in results), first.confusion.num_classes, first.confusion.classes)
    num_images = sum(r.num_images for r in results)
    if reduce is not None:
        packed = torch.cat([total.tensor().flatten().cpu(), torch.tensor([num_images], dtype=torch.int64)])
        packed = reduce(packed).cpu()
        total = ConfusionMatrix(total.num_classes, packed[:-1].reshape(total.num_classes, total.num_classes),
                                total.classes)
        num_images = int(packed[-1])
    return EvalResult(total, total.metrics(), first.settings, num_images, first.dataset, first.split,
                      max(r.seconds for r in results), dict(first.extra))


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


def _iterate(dataset: Any, num_workers: int) -> Iterable[dict[str, Any]]:
    if num_workers > 0:
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers)
    return (dataset[i] for i in range(len(dataset)))


def evaluate(
    model: nn.Module,
    dataset: Any,
    settings: InferenceSettings | None = None,
    *,
    progress: bool = False,
    num_workers: int = 0,
    num_classes: int | None = None,
    name: str | None = None,
    **overrides: Any,
) -> EvalResult:
    """Score ``model`` on ``dataset`` (items: dicts with a normalised ``image`` 3×H×W and ``label`` H×W trainIds).

    Args:
        settings: how logits are computed (:class:`~pinmem.evaluation.inference.InferenceSettings`: whole image
            or sliding windows, flip, target BN, autocast, batch size, device); default: its defaults.
            ``settings.batch_size`` is images per forward in ``whole`` mode (consecutive images of equal size
            only), windows per forward in ``slide`` mode. ``settings.device`` None: where the model's parameters
            are; otherwise the model is moved there.
        progress: show a tqdm bar over images.
        num_workers: DataLoader worker processes reading images (0: read in this process).
        num_classes: the classes scored; None: the model's ``num_classes`` (19 without one). The class names are
            the dataset's (``dataset.classes``, also through a ``Subset``) when their count agrees.
        overrides: fields of ``settings`` to replace, e.g. ``mode="slide", batch_size=8``.

    The model is put in eval mode for the pass and its previous train/eval state is restored afterwards. Like
    the move to ``settings.device``, ``settings.channels_last`` converts the model in place.
    """
    settings = InferenceSettings.resolve(settings, overrides)
    device = model_device(model) if settings.device is None else resolve_device(settings.device)
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    dtype = next(model.parameters()).dtype  # float32, or float64 for a model trained with train.dtype=float64
    num_classes = int(num_classes or getattr(model, "num_classes", NUM_CLASSES))
    confusion = ConfusionMatrix(num_classes, classes=dataset_class_names(dataset))
    was_training = model.training
    start = time.perf_counter()
    count = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc=f"eval {name or getattr(dataset, 'name', '')}".rstrip(), unit="img")
    try:
        model.eval()
        with torch.no_grad():
            for images, labels in _batches(_iterate(dataset, num_workers), settings.batch_size):
                images = images.to(device, dtype, non_blocking=True)
                out = infer(model, images, settings)
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


def dataset_class_names(dataset: Any) -> tuple[str, ...] | None:
    """The class names of ``dataset`` (looking through ``torch.utils.data.Subset``), or None."""
    while not hasattr(dataset, "classes") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    names = getattr(dataset, "classes", None)
    return tuple(names) if names else None


def _running_miou(confusion: ConfusionMatrix) -> float:
    value = confusion.metrics().miou
    return 0.0 if math.isnan(value) else value
