"""Issue 21: the user's own folder datasets (dataset.yaml), any class set, as sources and targets, end to end.

The datasets here are written with plain PIL/numpy, as a user's own script would, never through pinmem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import optional_module
from eval_support import run_cli
from PIL import Image

from pinmem.cli import main
from pinmem.data import build_dataset, build_training_dataset
from pinmem.data.base import no_transform
from pinmem.engine.config import load_config
from pinmem.errors import ConfigError, CorruptFileError, DatasetLayoutError
from pinmem.training.checkpoint import load_checkpoint

NAMES = ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]
PALETTE = [[128, 64, 128], [70, 70, 70], [153, 153, 153], [107, 142, 35], [70, 130, 180], [220, 20, 60], [0, 0, 142]]
SIZE = (32, 64)  # height, width


def blocky_ids(rng: np.random.Generator, classes: int = 7) -> np.ndarray:
    blocks = rng.integers(0, classes, (4, 4))
    return np.kron(blocks, np.ones((SIZE[0] // 4, SIZE[1] // 4), dtype=np.int64))


def write_palette_domain(root: Path, seed: int, counts: dict[str, int] | None = None) -> Path:
    """7 classes, RGB labels in palette encoding, JPEG images one folder deep, like a user's own export."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": NAMES, "label_encoding": "palette",
                                                       "palette": PALETTE}))
    tint = rng.integers(-40, 40, 3)
    for split, n in (counts or {"train": 3, "val": 2}).items():
        for i in range(n):
            ids = blocky_ids(rng)
            rgb = np.clip(np.asarray(PALETTE)[ids] + tint + rng.integers(-10, 10, (*ids.shape, 3)), 0, 255)
            for kind, array, suffix in (("images", rgb, ".jpg"), ("labels", np.asarray(PALETTE)[ids], ".png")):
                path = root / kind / split / "seq1" / f"frame{i:03d}{suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array.astype(np.uint8)).save(path)
    return root


def write_value_domain(root: Path, spec: dict, labels: list[np.ndarray], split: str = "train") -> Path:
    """Single-channel labels (8- or 16-bit PNG) with the given dataset.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        for kind in ("images", "labels"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*label.shape, 3)).astype(np.uint8)).save(root / "images" / split /
                                                                                       f"{i}.png")
        Image.fromarray(label).save(root / "labels" / split / f"{i}.png")
    return root


def tiny(*extra: str) -> list[str]:
    return ["model.backbone=resnet18", "train.crop_size=32", "train.batch_per_domain=2", "data.num_workers=0",
            "pinmem.init_images=4", "train.progress=false", "train.log_every=1", "data.epoch_length=8",
            "train.iterations=2", "train.device=cpu", "isw.start_epoch=0", "isw.trials=1", "isw.images_per_trial=2",
            *extra]


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("own")
    return {name: write_palette_domain(base / name, seed) for seed, name in enumerate(("sim_a", "sim_b", "site"))}


def roots(domains: dict[str, Path]) -> list[str]:
    return [f"data.roots.{name}={root}" for name, root in domains.items()]


@pytest.fixture(scope="module")
def pinmem_run(domains, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "method=pinmem", *roots(domains), "data.sources=[sim_a,sim_b]", "data.targets=[site]",
            f"train.out_dir={out}", *tiny()]
    assert main(argv) == 0
    return out / "checkpoints" / "last.pt"


# -- training, evaluation, prediction, export on 7 classes ---------------------------------------------------------

@pytest.mark.parametrize("method", ["erm", "ibn", "isw", "mldg"])
def test_every_method_trains_on_seven_palette_classes(method, domains, tmp_path):
    out = tmp_path / "run"
    assert main(["train", f"method={method}", *roots(domains), "data.sources=[sim_a,sim_b]", "data.targets=[]",
                 f"train.out_dir={out}", *tiny()]) == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["iteration"] == 2 and ckpt["config"]["model"]["classes"] == NAMES
    assert ckpt["model"]["classifier.weight"].shape[0] == 7


def test_pinmem_memory_has_one_slot_per_class_and_the_checkpoint_records_the_classes(pinmem_run):
    ckpt = load_checkpoint(pinmem_run)
    assert ckpt["model"]["memory.slots"].shape[0] == 7
    assert ckpt["config"]["model"]["num_classes"] == 7
    assert ckpt["config"]["model"]["classes"] == NAMES and ckpt["config"]["model"]["palette"] == PALETTE
    assert torch.isfinite(ckpt["model"]["memory.slots"]).all()


def _palette_to_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    ids = np.full(rgb.shape[:2], 255, dtype=np.int64)
    for c, colour in enumerate(PALETTE):
        ids[(rgb == colour).all(axis=2)] = c
    return ids


def test_eval_reports_the_seven_names_and_the_miou_of_predicts_pngs(pinmem_run, domains, tmp_path):
    site = domains["site"]
    code, out, err = run_cli(["eval", str(pinmem_run), "--dataset", "site", "--root", str(site), "--quiet",
                              "--device", "cpu", "--workers", "0", "--json", str(tmp_path / "e.json")])
    assert code == 0, err
    assert "classes (7): flat, construction, object, nature, sky, human, vehicle" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["classes"] == NAMES and list(report["results"][0]["iou"]) == NAMES
    code, out, err = run_cli(["predict", str(pinmem_run), str(site / "images" / "val"), "--recursive", "--out",
                              str(tmp_path / "pred"), "--device", "cpu", "--quiet"])
    assert code == 0 and "classes (7): flat" in out, err
    confusion = np.zeros((7, 7), dtype=np.int64)
    for label in sorted((site / "labels" / "val").rglob("*.png")):
        pred = np.asarray(Image.open(tmp_path / "pred" / f"{label.stem}_trainid.png")).astype(np.int64)
        assert pred.max() < 7
        gt = _palette_to_ids(label)
        confusion += np.bincount(7 * gt[gt < 7] + pred[gt < 7], minlength=49).reshape(7, 7)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    miou = float(np.mean(tp[union > 0] / union[union > 0]))
    assert report["results"][0]["miou"] == pytest.approx(miou, abs=1e-12)
    assert report["results"][0]["confusion_matrix"] == confusion.tolist()
    colour = np.asarray(Image.open(next((tmp_path / "pred").glob("*_color.png"))).convert("RGB"))
    assert {tuple(c) for c in colour.reshape(-1, 3)} <= {tuple(c) for c in PALETTE}  # the dataset's palette


def test_onnx_export_outputs_seven_channels(pinmem_run, tmp_path):
    ort = optional_module("onnxruntime", "pip install pinmem[export]")
    path = tmp_path / "m.onnx"
    code, out, err = run_cli(["export", str(pinmem_run), "--out", str(path), "--height", "32", "--width", "64",
                              "--exporter", "legacy"])
    assert code == 0 and "Bx7xHxW" in out, err
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": np.zeros((1, 3, 40, 56), dtype=np.float32)})[0]
    assert logits.shape == (1, 7, 40, 56)
    meta = session.get_modelmeta().custom_metadata_map
    if "classes" in meta:  # written when onnx is installed
        assert json.loads(meta["classes"]) == NAMES


def test_a_checkpoint_whose_classes_differ_from_the_data_is_one_line(pinmem_run, tmp_path, write_dataset):
    root = write_dataset("cityscapes", counts={"val": 1}).root
    code, _, err = run_cli(["eval", str(pinmem_run), "--dataset", "cityscapes", "--root", str(root), "--quiet",
                            "--device", "cpu"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(pinmem_run) in err and "7 classes" in err and "19 Cityscapes classes" in err


# -- the other encodings -------------------------------------------------------------------------------------------

def test_train_ids_encoding_with_16_bit_labels_and_its_ignore_index(tmp_path):
    label = np.array([[0, 1, 2, 3], [1000, 3, 2, 1]], dtype=np.uint16)
    root = write_value_domain(tmp_path / "t", {"classes": ["a", "b", "c", "d"], "label_encoding": "train_ids",
                                               "ignore_index": 1000}, [label])
    ds = build_dataset("mine", root, "train", transform=no_transform)
    assert ds.classes == ("a", "b", "c", "d") and len(ds) == 1
    assert ds.load_label(0).tolist() == [[0, 1, 2, 3], [255, 3, 2, 1]]
    bad = write_value_domain(tmp_path / "bad", {"classes": ["a", "b"], "label_encoding": "train_ids"},
                             [np.array([[0, 1], [5, 255]], dtype=np.uint8)])
    assert build_dataset("mine", bad, "train", transform=no_transform).load_label(0).tolist() == [[0, 1], [255, 255]]
    with pytest.raises(CorruptFileError, match=r"0\.png holds values outside the encoding .*: 5$"):
        build_training_dataset("mine", bad, "train", transform=no_transform)


def test_ids_encoding_maps_listed_ids_and_ignores_the_rest(tmp_path):
    label = np.array([[7, 8, 26], [0, 99, 7]], dtype=np.uint8)
    root = write_value_domain(tmp_path / "i", {"classes": ["road", "sidewalk", "car"], "label_encoding": "ids",
                                               "id_to_train": {7: 0, 8: 1, 26: 2}}, [label])
    ds = build_training_dataset("mine", root, "train", transform=no_transform)
    assert ds.load_label(0).tolist() == [[0, 1, 2], [255, 255, 0]]


def test_split_list_files_and_suffixes(tmp_path):
    root = tmp_path / "s"
    for stem in ("a", "b"):
        (root / "img" / "x").mkdir(parents=True, exist_ok=True)
        (root / "ann" / "x").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "img" / "x" / f"{stem}.png")
        Image.fromarray(np.ones((4, 4), np.uint8)).save(root / "ann" / "x" / f"{stem}_gt.png")
    (root / "val.txt").write_text("x/b\n")
    (root / "dataset.yaml").write_text(yaml.safe_dump({
        "classes": ["p", "q"], "label_encoding": "train_ids", "images": "img", "labels": "ann",
        "label_suffix": "_gt.png", "splits": {"val": "val.txt"}}))
    ds = build_dataset("mine", root, "val", transform=no_transform)
    assert [p.name for p, _ in ds.files] == ["b.png"] and ds.load_label(0).max() == 1


# -- mixing with the built-in datasets ------------------------------------------------------------------------------

def test_a_mixed_run_gtav_and_a_folder_declaring_cityscapes_classes(tmp_path, write_dataset):
    gtav = write_dataset("gtav", counts={"train": 2}).root
    rng = np.random.default_rng(1)
    mine = write_value_domain(tmp_path / "mine", {"classes": "cityscapes", "label_encoding": "train_ids"},
                              [rng.integers(0, 19, SIZE).astype(np.uint8) for _ in range(2)])
    out = tmp_path / "run"
    assert main(["train", "method=erm", f"data.roots.gtav={gtav}", f"data.roots.mine={mine}",
                 "data.sources=[gtav,mine]", "data.targets=[]", f"train.out_dir={out}", *tiny()]) == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["config"]["model"]["num_classes"] == 19 and ckpt["config"]["model"]["classes"] is None


def test_class_sets_that_differ_are_one_line_naming_both_and_nothing_is_written(domains, tmp_path, capsys,
                                                                                write_dataset):
    gtav = write_dataset("gtav", counts={"train": 1}).root
    out = tmp_path / "run"
    assert main(["train", f"data.roots.gtav={gtav}", *roots(domains), "data.sources=[gtav,sim_a]",
                 "data.targets=[site]", f"train.out_dir={out}", *tiny()]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gtav has the 19 Cityscapes classes but sim_a has 7 classes" in err, err
    assert not out.exists()
    with pytest.raises(ConfigError, match="model.num_classes=5 contradicts the data: sim_a, site have 7 classes"):
        load_config(None, [*roots(domains), "data.sources=[sim_a]", "data.targets=[site]", "model.num_classes=5"])


# -- bad input: one line naming the file or key, exit 2, nothing written ---------------------------------------

def _train_fails(tmp_path, capsys, root: Path, *words: str) -> None:
    out = tmp_path / "run"
    code = main(["train", "method=erm", f"data.roots.mine={root}", "data.sources=[mine]", "data.targets=[]",
                 f"train.out_dir={out}", *tiny()])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), (words, err)
    assert not out.exists()


def test_a_missing_or_wrong_dataset_yaml_field_names_the_file_and_key(tmp_path, capsys):
    root = write_palette_domain(tmp_path / "d", 0, {"train": 1})
    spec = yaml.safe_load((root / "dataset.yaml").read_text())
    for change, key in (({"classes": None}, "classes"), ({"label_encoding": "rgb"}, "label_encoding"),
                        ({"palette": PALETTE[:3]}, "palette"), ({"colours": 1}, "colours")):
        broken = {k: v for k, v in {**spec, **change}.items() if v is not None}
        (root / "dataset.yaml").write_text(yaml.safe_dump(broken))
        _train_fails(tmp_path, capsys, root, str(root / "dataset.yaml"), f"{key}:")


def test_an_image_without_a_label_and_a_label_without_an_image_are_named(tmp_path, capsys):
    root = write_palette_domain(tmp_path / "d", 0, {"train": 2})
    label = root / "labels" / "train" / "seq1" / "frame001.png"
    label.rename(tmp_path / "away.png")
    _train_fails(tmp_path, capsys, root, "no label file", "frame001.jpg")
    (tmp_path / "away.png").rename(label)
    (root / "images" / "train" / "seq1" / "frame000.jpg").unlink()
    _train_fails(tmp_path, capsys, root, "no image file", "frame000.png")


def test_a_colour_outside_the_palette_stops_before_anything_is_written(tmp_path, capsys):
    root = write_palette_domain(tmp_path / "d", 0, {"train": 2})
    label = root / "labels" / "train" / "seq1" / "frame001.png"
    rgb = np.asarray(Image.open(label)).copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(label)
    _train_fails(tmp_path, capsys, root, str(label), "[1, 2, 3]", "unknown_colour: ignore")
    code, out, _ = run_cli(["data", "check", "--dataset", "mine", "--root", str(root), "--quiet"])
    assert code == 1 and str(label) in out and "[1, 2, 3]" in out
    spec = yaml.safe_load((root / "dataset.yaml").read_text())
    (root / "dataset.yaml").write_text(yaml.safe_dump({**spec, "unknown_colour": "ignore"}))
    ds = build_training_dataset("mine", root, "train", transform=no_transform)
    assert ds.load_label(1)[0, 0] == 255


def test_an_unknown_name_without_dataset_yaml_says_so(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown dataset 'kitti' .*dataset.yaml"):
        load_config(None, [f"data.roots.kitti={tmp_path}", "data.sources=[kitti]"])
    with pytest.raises(DatasetLayoutError, match="dataset.yaml not found"):
        build_dataset("kitti", tmp_path, "train")


# -- docs/own-data.md's worked example, run as written (at a tiny size) ----------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "own-data.md"
#: the sizes of the documented run -> tiny ones; everything else in the commands is run as written
TINY = {"--num 40": "--num 2", "--val-num 10": "--val-num 1", "--size 256x128": "--size 64x32",
        "train.crop_size=64": "train.crop_size=32", "train.iterations=10": "train.iterations=2",
        "data.epoch_length=40": "data.epoch_length=4",
        "pinmem.init_images=8": "pinmem.init_images=2"}
#: options added for the test machine (CPU, no worker processes, no progress bars, the quick ONNX exporter)
EXTRA = {"train": ["train.device=cpu", "data.num_workers=0", "train.progress=false"],
         "eval": ["--device", "cpu", "--workers", "0", "--quiet"], "predict": ["--device", "cpu", "--quiet"],
         "export": ["--exporter", "legacy", "--height", "32", "--width", "64"], "synth": ["--quiet"]}


def documented_commands() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = text.split("```sh\n")[1:]
    assert len(blocks) == 1, "docs/own-data.md: expected one ```sh block of the worked example"
    return [line for line in blocks[0].split("```")[0].splitlines() if line.startswith("pinmem ")]


def test_the_documented_commands_run_as_written(tmp_path, monkeypatch):
    import shlex

    commands = documented_commands()
    assert [c.split()[1] for c in commands] == ["synth", "data", "train", "eval", "predict", "export"]
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for command in commands:
        for big, small in TINY.items():
            command = command.replace(big, small)
        argv = shlex.split(command)[1:]
        code, out, err = run_cli([*argv, *EXTRA.get(argv[0], [])])
        assert code == 0, (command, err)
        outputs[argv[0]] = out
    assert "flat" in outputs["data"] and "OK" in outputs["data"]
    report = json.loads((tmp_path / "runs/own/eval.json").read_text())
    assert report["classes"] == NAMES and report["sources"] == ["sim_day", "sim_night"]
    assert load_checkpoint(tmp_path / "runs/own/checkpoints/last.pt")["model"]["memory.slots"].shape[0] == 7
    assert "Bx7xHxW" in outputs["export"] and (tmp_path / "runs/own/model.onnx").is_file()
    assert len(list((tmp_path / "runs/own/pred").glob("*_trainid.png"))) == 1


def test_a_diverged_memory_slot_is_named_with_the_runs_classes():
    from pinmem.data.classes import class_set_from
    from pinmem.methods.pinmem import slot_names

    names = [f"part{i}" for i in range(19)]  # 19 classes that are not Cityscapes'
    assert slot_names([3], class_set_from(names, None, 19).names) == "3 (part3)"
    assert slot_names([3, 7], class_set_from(None, None, 19).names) == "3 (wall), 7 (traffic sign)"
