"""Evaluation and inference: metrics, whole-image and sliding-window inference, reports, plots.

Entry points: :func:`evaluate` (one dataset split → :class:`EvalResult`), :class:`ConfusionMatrix` (streamed,
mergeable), :func:`infer` (logits of a batch in ``whole``/``slide`` mode), :func:`target_batchnorm`.
The ``pinmem eval/predict/export/report`` commands live in :mod:`pinmem.commands`. See
``docs/evaluation.md``.
"""

from pinmem.evaluation.evaluate import EvalResult, EvalSettings, evaluate, merge_results
from pinmem.evaluation.metrics import ConfusionMatrix, SegmentationMetrics, confusion_counts, metrics_from_matrix
from pinmem.evaluation.sliding import Inference, infer, target_batchnorm, window_starts

__all__ = [
    "ConfusionMatrix",
    "EvalResult",
    "EvalSettings",
    "Inference",
    "SegmentationMetrics",
    "confusion_counts",
    "evaluate",
    "infer",
    "merge_results",
    "metrics_from_matrix",
    "target_batchnorm",
    "window_starts",
]
