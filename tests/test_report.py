"""`pinmem report`: per-class IoU bars and a combined table from eval JSON files; the t-SNE figure."""

import json
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import optional_module
from eval_support import make_checkpoint, run_cli

from pinmem.engine.config import load_config
from pinmem.evaluation.evaluate import EvalResult
from pinmem.evaluation.inference import InferenceSettings
from pinmem.evaluation.metrics import ConfusionMatrix
from pinmem.evaluation.report import build_report, load_report, write_json


def _result(dataset, seed):
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 50, size=(19, 19)) + np.eye(19, dtype=np.int64) * 200
    matrix[16] = 0  # "train" absent from the ground truth ...
    matrix[:, 16] = 0  # ... and from the predictions: no IoU
    cm = ConfusionMatrix(matrix=matrix)
    return EvalResult(cm, cm.metrics(), InferenceSettings(mode="slide", flip=True), 3, dataset, "val")


def _write(tmp_path, name, method, seed):
    cfg = load_config(None, [f"method={method}", "model.backbone=resnet50"])
    report = build_report([_result("cityscapes", seed), _result("bdd100k", seed + 1)], f"{name}.pt", cfg, 100)
    return write_json(report, tmp_path / f"{name}.json")


def test_report_bars_and_combined_table(tmp_path):
    optional_module("matplotlib", "pip install pinmem[plots]")
    a, b = _write(tmp_path, "base", "erm", 0), _write(tmp_path, "ours", "pinmem", 5)
    code, out, err = run_cli(["report", str(a), str(b), "--out", str(tmp_path / "rep")])
    assert code == 0, err
    png = cv2.imread(str(tmp_path / "rep" / "iou_per_class.png"))
    assert png is not None and png.shape[0] > 300 and png.shape[1] > 600
    md = (tmp_path / "rep" / "comparison.md").read_text()
    assert "erm G+S DeepLabV3+ R50 / Cityscapes" in md and "pinmem G+S DeepLabV3+ R50 / BDD100K" in md
    assert "sliding 768² windows, stride 512" in md
    train_row = next(line for line in md.splitlines() if line.startswith("| train |"))
    assert train_row.count("| - ") == 4  # absent class: no number, not 0
    code, _, err = run_cli(["report", str(a), str(b), "--labels", "A", "--out", str(tmp_path / "x")])
    assert code == 2 and "--labels gives 1 names for 2" in err


def test_report_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    code, _, err = run_cli(["report", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2 and "not a pinmem evaluation report" in err and "Traceback" not in err
    (tmp_path / "junk.json").write_bytes(b"\xff\x00 not json")
    with pytest.raises(Exception, match="not a JSON file"):
        load_report(tmp_path / "junk.json")
    code, _, err = run_cli(["report", "--out", str(tmp_path / "o")])
    assert code == 2 and "--tsne" in err


def test_tsne_of_memory_and_pixels(tmp_path):
    optional_module("sklearn", "pip install pinmem[tsne]")
    optional_module("matplotlib", "pip install pinmem[plots]")
    from pinmem.data.examples import write_examples

    roots = write_examples(tmp_path / "data", num_train=1, num_val=2, size=(96, 64), seed=1)
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    code, out, err = run_cli(["report", "--tsne", str(ckpt), "--dataset", "cityscapes", "--root",
                              str(roots["cityscapes"]), "--images", "2", "--per-class", "20", "--perplexity", "5",
                              "--out", str(tmp_path / "t"), "--device", "cpu"])
    assert code == 0, err
    png = cv2.imread(str(tmp_path / "t" / "tsne_cityscapes.png"))
    assert png is not None and png.shape[0] > 300


def test_missing_optional_dependencies_are_named(monkeypatch):
    from pinmem.errors import PinmemError
    from pinmem.evaluation.plots import pyplot
    from pinmem.evaluation.tsne import FeatureSample, embed

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(PinmemError, match="pip install scikit-learn"):
        embed(FeatureSample(np.zeros((10, 4)), np.zeros(10, int)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PinmemError, match="pip install matplotlib"):
        pyplot()


def test_sample_features_draws_per_class(tmp_path):
    from pinmem.evaluation.tsne import sample_features
    from pinmem.models import build_model

    class Items:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            label = torch.full((64, 64), 255)
            label[:32] = 0
            label[32:, :32] = 13
            return {"image": torch.randn(3, 64, 64), "label": label}

    model = build_model(arch="deeplabv3plus", backbone="resnet18", memory=True)
    sample = sample_features(model, Items(), images=2, per_class=5)
    assert sorted(set(sample.classes.tolist())) == [0, 13] and sample.features.shape == (10, 256)
    assert np.allclose(np.linalg.norm(sample.features, axis=1), 1, atol=1e-5)
    assert sample.slots is not None and sample.slots.shape[0] == 0  # a fresh memory is all zero: no slots drawn
