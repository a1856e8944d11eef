"""`pinmem eval` end to end, the paper comparison, and checkpoints that must be refused."""

import json

import pytest
import torch
from eval_support import make_checkpoint, run_cli

import pinmem
from pinmem.engine.config import load_config
from pinmem.evaluation.paper import PaperQuery, find_paper_rows, paper_rows, query_from_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pinmem.data.examples import write_examples

    base = tmp_path_factory.mktemp("evalcli")
    roots = write_examples(base / "data", num_train=1, num_val=2, size=(96, 64), seed=3)
    return make_checkpoint(base / "tiny.pt"), roots


def test_eval_two_targets_table_and_files(tmp_path, setup):
    ckpt, roots = setup
    code, out, err = run_cli([
        "eval", str(ckpt), "--dataset", "cityscapes", "--root", str(roots["cityscapes"]),
        "--dataset", "bdd100k", "--root", str(roots["bdd100k"]), "--mode", "slide", "--crop", "48",
        "--stride", "32", "--flip", "--batch-size", "4", "--workers", "0", "--quiet", "--device", "cpu",
        "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "o"), "--compare-paper"])
    assert code == 0, err
    for word in ("Cityscapes", "BDD100K", "mean", "mIoU", "road", "bicycle", "sliding 48² windows, stride 32",
                 "no reported row for method Pin the Memory, sources G+S, network DeepLabV3+ R18"):
        assert word in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == "pinmem-eval" and data["checkpoint"] == str(ckpt) and data["iteration"] == 7
    assert [r["dataset"] for r in data["results"]] == ["cityscapes", "bdd100k"]
    first = data["results"][0]
    assert first["mode"] == "slide" and first["flip"] is True and first["split"] == "val"
    assert first["num_images"] == 2 and len(first["confusion_matrix"]) == 19 and len(first["iou"]) == 19
    assert sum(map(sum, first["confusion_matrix"])) == first["num_pixels"] > 0
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"results.json", "results.csv", "results.md"}
    assert "| **mIoU** |" in (tmp_path / "o" / "results.md").read_text()
    assert (tmp_path / "o" / "results.csv").read_text().count("\n") == 1 + 2 * 21


def test_eval_usage_errors(setup):
    ckpt, roots = setup
    code, out, err = run_cli(["eval", str(ckpt), "--dataset", "bdd100k", "--root", str(roots["bdd100k"]),
                              "--limit", "1", "--quiet", "--workers", "0"])
    assert code == 0 and "images: BDD100K val 1" in out and "mean" not in out, err
    code, _, err = run_cli(["eval", str(ckpt), "--dataset", "cityscapes"])
    assert code == 2 and "one --root per --dataset" in err
    code, _, err = run_cli(["eval", str(ckpt), "--dataset", "cityscapes", "--root", str(roots["bdd100k"])])
    assert code == 2 and "cityscapes" in err and "Traceback" not in err


def test_paper_rows_match_the_checkpoint_setup():
    cfg = load_config(None, ["method=pinmem", "model.backbone=resnet50", "data.sources=[synthia,gtav]"])
    rows = find_paper_rows(query_from_config(cfg))
    assert {k: r.miou for k, r in rows.items()} == {"cityscapes": 44.51, "bdd100k": 38.07, "mapillary": 42.70}
    assert rows["cityscapes"].iou[0] == 85.3 and rows["cityscapes"].has_classes
    erm = find_paper_rows(PaperQuery("erm", "G+S", "DeepLabV3+ R50"))
    assert erm["cityscapes"].method == "Baseline" and erm["cityscapes"].miou == 33.42
    ts = find_paper_rows(PaperQuery("mldg", "G+S+I", "DeepLabV3+ R50", target_bn=True))
    assert ts["bdd100k"].method == "TSMLDG" and not ts["bdd100k"].has_classes
    v2 = find_paper_rows(PaperQuery("pinmem", "G+S", "DeepLabV2 R101"))
    assert set(v2) == {"cityscapes", "bdd100k"} and v2["bdd100k"].miou == 45.5
    assert find_paper_rows(PaperQuery("pinmem", "G+S", "DeepLabV3+ R18")) == {}
    assert len(paper_rows()) == 70


def test_compare_paper_table_shows_paper_columns(tmp_path):
    from pinmem.evaluation import EvalResult, InferenceSettings
    from pinmem.evaluation.metrics import ConfusionMatrix
    from pinmem.evaluation.report import build_report, format_text

    cm = ConfusionMatrix(matrix=torch.eye(19, dtype=torch.int64) * 5)
    res = EvalResult(cm, cm.metrics(), InferenceSettings(), 1, "cityscapes", "val")
    cfg = load_config(None, ["method=pinmem", "model.backbone=resnet50"])
    text = format_text(build_report([res], "x.pt", cfg, 1, None, query_from_config(cfg)))
    assert "paper: Pin the Memory, G+S, DeepLabV3+ R50 (Table 1" in text
    assert "85.3" in text and "44.51" in text and "100.00" in text


class Payload:
    """Unpickling this runs ``open(marker, "w")``, i.e. creates a file: the code a checkpoint must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, setup):
    ckpt_ok, roots = setup
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    good = torch.load(ckpt_ok, weights_only=True)
    torch.save({**good, "extra": Payload(marker)}, evil)
    probe = tmp_path / "probe.pt"  # prove the payload is live: a full unpickle of a copy does create the file
    torch.save(Payload(tmp_path / "probe-ran"), probe)
    torch.load(probe, weights_only=False).close()
    assert (tmp_path / "probe-ran").exists()
    code, _, err = run_cli(["eval", str(evil), "--dataset", "cityscapes", "--root", str(roots["cityscapes"]),
                            "--quiet"])
    assert code == 2 and "refusing" in err and "Traceback" not in err
    with pytest.raises(pinmem.PinmemError, match="refusing"):
        pinmem.load(evil)
    code, _, err = run_cli(["predict", str(evil), str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "refusing" in err
    assert not marker.exists()


def test_truncated_and_foreign_checkpoints(tmp_path, setup):
    ckpt_ok, roots = setup
    truncated = tmp_path / "truncated.pt"
    data = ckpt_ok.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    other = make_checkpoint(tmp_path / "r34.pt", backbone="resnet34")
    foreign = tmp_path / "foreign.pt"  # a resnet18 config holding resnet34 weights
    payload = torch.load(other, weights_only=True)
    payload["config"] = torch.load(ckpt_ok, weights_only=True)["config"]
    torch.save(payload, foreign)
    for path, message in ((truncated, "truncated"), (foreign, "do not fit"), (tmp_path / "none.pt", "not found")):
        for argv in (["eval", str(path), "--dataset", "bdd100k", "--root", str(roots["bdd100k"]), "--quiet"],
                     ["export", str(path), "--out", str(tmp_path / "m.onnx")]):
            code, _, err = run_cli(argv)
            assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_eval_opens_the_checkpoint_file_once(setup, monkeypatch):
    """Model, configuration and iteration come from one read of the file (``load_model``)."""
    ckpt, roots = setup
    opened, real_load = [], torch.load

    def counting_load(f, *args, **kwargs):
        opened.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    code, out, err = run_cli(["eval", str(ckpt), "--dataset", "cityscapes", "--root", str(roots["cityscapes"]),
                              "--workers", "0", "--quiet", "--device", "cpu"])
    assert code == 0, err
    assert opened.count(str(ckpt)) == 1, opened
