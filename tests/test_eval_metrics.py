"""Confusion matrix, IoU and mIoU against a brute-force per-class computation."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinmem.evaluation.metrics import ConfusionMatrix, confusion_counts, metrics_from_matrix

N = 19


def brute_force(pred: np.ndarray, gt: np.ndarray) -> tuple[list[float], float, float]:
    """Per-class IoU (NaN when the class is in neither map), NaN-mean mIoU and pixel accuracy, by counting."""
    valid = (gt >= 0) & (gt < N)
    ious = []
    for c in range(N):
        tp = np.sum((pred == c) & (gt == c) & valid)
        fp = np.sum((pred == c) & (gt != c) & valid)
        fn = np.sum((pred != c) & (gt == c) & valid)
        ious.append(tp / (tp + fp + fn) if tp + fp + fn > 0 else math.nan)
    defined = [v for v in ious if not math.isnan(v)]
    miou = sum(defined) / len(defined) if defined else math.nan
    acc = np.sum((pred == gt) & valid) / valid.sum() if valid.sum() else math.nan
    return ious, miou, acc


maps = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1),
                 st.lists(st.integers(0, N - 1), min_size=1, max_size=6, unique=True), st.integers(0, 3))


@settings(max_examples=60, deadline=None)
@given(maps)
def test_iou_matches_brute_force(params):
    h, w, seed, present, chunks = params
    rng = np.random.default_rng(seed)
    classes = np.array(present)  # only a few classes appear: most are absent from both maps
    gt = rng.choice(np.concatenate([classes, [255, 19, 200]]), size=(h, w)).astype(np.uint8)
    pred = rng.choice(classes, size=(h, w)).astype(np.int64)
    cm = ConfusionMatrix()
    for part_p, part_g in zip(np.array_split(pred, chunks + 1), np.array_split(gt, chunks + 1), strict=True):
        cm.update(part_p, part_g)  # streamed in chunks, some possibly empty
    m = cm.metrics()
    ious, miou, acc = brute_force(pred, gt)
    np.testing.assert_allclose(m.iou, ious, equal_nan=True)
    assert (math.isnan(m.miou) and math.isnan(miou)) or m.miou == pytest.approx(miou)
    assert (math.isnan(m.pixel_accuracy) and math.isnan(acc)) or m.pixel_accuracy == pytest.approx(acc)
    assert cm.matrix.sum() == np.sum(gt < N)


def test_absent_class_excluded_but_false_positive_counts():
    gt = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 2, 1, 5]])
    m = metrics_from_matrix(confusion_counts(pred, gt).numpy())
    assert m.iou[0] == pytest.approx(0.5) and m.iou[1] == 1.0
    assert m.iou[2] == 0.0  # predicted but absent from the ground truth: counts as 0
    assert math.isnan(m.iou[5])  # predicted only on an ignored pixel: absent everywhere -> excluded
    assert m.miou == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m.pixel_accuracy == pytest.approx(2 / 3)


def test_merge_equals_joint_and_torch_inputs():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 21, size=(2, 8, 8))
    gt[gt >= 19] = 255
    pred = rng.integers(0, 19, size=(2, 8, 8))
    a, b, joint = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    a.update(torch.from_numpy(pred[0]), torch.from_numpy(gt[0]))
    b.update(pred[1], gt[1])
    joint.update(pred, gt)
    assert np.array_equal((a + b).matrix, joint.matrix)
    assert np.array_equal(ConfusionMatrix.sum([a, b]).matrix, joint.matrix)
    assert (a + b).matrix.dtype == np.int64
    assert np.array_equal(ConfusionMatrix(matrix=a.tensor()).matrix, a.matrix)


def test_empty_and_bad_inputs():
    m = ConfusionMatrix().metrics()
    assert math.isnan(m.miou) and math.isnan(m.pixel_accuracy) and m.num_pixels == 0
    d = m.to_dict()
    assert d["miou"] is None and d["iou"]["road"] is None
    json.dumps(d, allow_nan=False)
    with pytest.raises(ValueError, match="0..18"):
        confusion_counts(np.array([19]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        ConfusionMatrix(num_classes=3).merge(ConfusionMatrix())
