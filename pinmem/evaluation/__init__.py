"""Evaluation and inference: metrics, whole-image and sliding-window inference, reports, plots.

Entry points: :func:`evaluate` (one dataset split → :class:`EvalResult`), :class:`ConfusionMatrix` (streamed,
mergeable), :func:`merge_results` (shards of one split, across ranks too), :class:`InferenceSettings` (how logits
are computed: the one declaration of mode, flip, windows, batch size, target BN, autocast, device), :func:`infer`
(logits of a batch under those settings), :func:`target_batchnorm`. The ``pinmem eval/predict/export/report``
commands live in :mod:`pinmem.commands`. See ``docs/evaluation.md``.
"""

from pinmem.evaluation.evaluate import EvalResult, evaluate, merge_results
from pinmem.evaluation.inference import (
    InferenceOutput,
    InferenceSettings,
    infer,
    recompute_bn_statistics,
    target_batchnorm,
    window_starts,
)
from pinmem.evaluation.metrics import ConfusionMatrix, SegmentationMetrics, confusion_counts, metrics_from_matrix

__all__ = [
    "ConfusionMatrix",
    "EvalResult",
    "InferenceOutput",
    "InferenceSettings",
    "SegmentationMetrics",
    "confusion_counts",
    "evaluate",
    "infer",
    "merge_results",
    "metrics_from_matrix",
    "recompute_bn_statistics",
    "target_batchnorm",
    "window_starts",
]
