"""The street-world DG benchmark script at toy size: one run writes a complete result file, a rerun skips it,
the gumbel_test row reuses the main run's training, and the report turns the files into the README table."""

import json
import re
import shutil

import pytest
import torch
from conftest import benchmark_script

TINY = ["--backbone", "resnet18", "--scratch", "--iterations", "1", "--crop", "32", "--num-train", "4",
        "--num-val", "1", "--threads", "1", "--world-size", "64", "32"]

REQUIRED = {"method", "variant", "seed", "backbone", "pretrained", "iterations", "crop", "source_val_miou",
            "target_miou", "per_class", "wall_s", "git_commit", "command"}


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("dg_street")


def test_grid_has_the_papers_rows_with_three_seeds_and_the_ablations(bench):
    keys = {r.key for r in bench.grid()}
    for m in ("erm", "ibn", "isw", "mldg", "pinmem"):
        assert {f"{m}-main-s{s}" for s in (304, 305, 306)} <= keys
    for m in ("erm", "mldg", "pinmem"):  # the released recipe's jitter, for the released and the fair comparison
        assert {f"{m}-jitter-s{s}" for s in (304, 305, 306)} <= keys
    assert [r.key for r in bench.grid()][5:8] == ["erm-jitter-s304", "mldg-jitter-s304", "pinmem-jitter-s304"]
    for v in ("no_meta", "no_coh", "no_div", "no_gumbel_train", "gumbel_test", "bn_shared", "ibn_backbone",
              "isw_backbone", "scratch", "no_gumbel_low_tau"):
        assert f"pinmem-{v}-s304" in keys
    assert len(keys) == len(bench.grid())


def test_a_run_writes_its_result_and_a_rerun_skips_it(bench, tmp_path, capsys):
    args = [*TINY, "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    bench.main([*args, "--only", "pinmem-main-s304", "pinmem-gumbel_test-s304", "erm-main-s304"])
    folder = next((tmp_path / "results").glob("*_i1_*"))
    files = sorted(p.name for p in folder.glob("*.json"))
    assert files == ["erm-main-s304.json", "pinmem-gumbel_test-s304.json", "pinmem-main-s304.json"]
    result = json.loads((folder / "pinmem-main-s304.json").read_text())
    assert REQUIRED <= set(result)
    machine = result["machine"]
    assert machine["cpu"] and machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["torch"] == torch.__version__ and machine["device"] == "cpu"
    manifest = tmp_path / "results" / "world" / f"{result['world']}.sha256"
    assert manifest.is_file() and len(manifest.read_text().splitlines()) > 5  # the world's files, first use
    assert set(result["target_miou"]) == {"cityscapes", "bdd100k", "mapillary"}
    assert result["pretrained"] is False and "--only pinmem-main-s304" in result["command"]
    gumbel = json.loads((folder / "pinmem-gumbel_test-s304.json").read_text())
    assert gumbel["train_s"] is None  # evaluated the main run's checkpoint, trained nothing
    assert len(list((tmp_path / "work").glob("*/*/checkpoints/last.pt"))) == 2

    stamp = (folder / "erm-main-s304.json").stat().st_mtime_ns
    bench.main([*args, "--only", "erm-main-s304"])
    assert (folder / "erm-main-s304.json").stat().st_mtime_ns == stamp

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- dg-street:begin -->\nold\n<!-- dg-street:end -->\nrest\n")
    doc = tmp_path / "results.md"
    doc.write_text(readme.read_text())
    bench.main([*args, "--report", "--update-readme", str(readme), "--update-doc", str(doc)])
    text = readme.read_text()
    assert "old" not in text and re.search(r"\| pinmem \| main( †)? \| 1 \|", text) and text.endswith("rest\n")
    assert "gumbel_test" not in text and "| pinmem | gumbel_test" in doc.read_text()  # the README: main rows
    assert (folder / "REPORT.md").is_file()


@pytest.fixture(scope="module")
def tiny_grid(bench, tmp_path_factory):
    """One finished tiny grid: erm/mldg/pinmem, main and jitter, seed 304."""
    root = tmp_path_factory.mktemp("grid")
    args = [*TINY, "--results", str(root / "results"), "--work", str(root / "work")]
    bench.main([*args, "--only", *(f"{m}-{v}-s304" for v in ("main", "jitter") for m in ("erm", "mldg", "pinmem"))])
    return root, args


def test_a_changed_world_is_refused(bench, tiny_grid, tmp_path):
    root, args = tiny_grid
    work = tmp_path / "work"
    shutil.copytree(root / "work" / "world", work / "world")
    image = next(p for p in sorted((work / "world").rglob("*")) if p.suffix in (".png", ".jpg"))
    image.write_bytes(image.read_bytes() + b"\0")
    args = [a if a != str(root / "work") else str(work) for a in args]
    with pytest.raises(SystemExit, match="differs from .*world_64x32_train4_val1.sha256 in 1 of"):
        bench.main([*args, "--only", "isw-main-s304"])
    assert not (root / "results" / next((root / "results").glob("*_i1_*")).name / "isw-main-s304.json").exists()


def test_reproduce_adds_a_reproduction_or_replaces_a_result(bench, tiny_grid):
    root, args = tiny_grid
    folder = next((root / "results").glob("*_i1_*"))
    erm, pinmem = folder / "erm-main-s304.json", folder / "pinmem-main-s304.json"
    mldg = folder / "mldg-main-s304.json"
    for path, commit in ((erm, "0" * 40 + "-dirty"), (pinmem, "0" * 40 + "-dirty"), (mldg, "0" * 40)):
        result = json.loads(path.read_text())  # as if written from an uncommitted tree (mldg: a clean one)
        result["git_commit"] = commit
        path.write_text(json.dumps(result))
    tampered = json.loads(pinmem.read_text())
    tampered["target_miou"]["cityscapes"] += 1.0
    pinmem.write_text(json.dumps(tampered))
    bench.main([*args, "--reproduce", "--only", "erm-main-s304", "pinmem-main-s304", "mldg-main-s304"])
    again = json.loads(erm.read_text())  # the same code: the same scores to every digit
    assert again["git_commit"].endswith("-dirty") and len(again["reproductions"]) == 1
    assert "--reproduce" not in again["reproductions"][0]["command"]
    replaced = json.loads(pinmem.read_text())  # other scores: the rerun's, the old ones kept
    assert replaced["git_commit"] == bench.process_provenance()["git_commit"] and "reproductions" not in replaced
    assert replaced["replaces"]["target_miou"]["cityscapes"] == tampered["target_miou"]["cityscapes"]
    assert replaced["target_miou"]["cityscapes"] == tampered["target_miou"]["cityscapes"] - 1.0
    assert "reproductions" not in json.loads(mldg.read_text())  # clean: not rerun


def test_the_report_shows_the_released_and_the_fair_comparison(bench, tiny_grid, tmp_path):
    root, args = tiny_grid
    readme = tmp_path / "README.md"
    readme.write_text("<!-- dg-street:begin -->\n<!-- dg-street:end -->\n<!-- dg-budget:begin -->\n"
                      "<!-- dg-budget:end -->\n")
    bench.main([*args, "--report", "--update-readme", str(readme)])
    text = readme.read_text()
    assert re.search(r"\| erm \| jitter( †)? \| 1 \|", text)
    assert "| method | as released | Δ | fair (all with the jitter)" in text
    assert f"({torch.backends.cpu.get_cpu_capability()})" in text.split("Processors: ")[1]
    bench.main([*args, "--report-budget", "1", "2", "--update-readme", str(readme)])
    text = readme.read_text()
    assert "| 1 it. target | 1 it. source | 2 it. target |" in text and "| pinmem | jitter | " in text
    assert (root / "results" / "BUDGET.md").is_file() and (root / "results" / "budget_curve.png").is_file()
    # a budget the CPU grid lacks is read from the GPU edition's folder (results/gpu/), its column naming the GPU
    one = next((root / "results").glob("*_i1_*"))
    gpu = root / "results" / "gpu" / one.name.replace("_i1_", "_i2_")
    gpu.mkdir(parents=True)
    for path in one.glob("*.json"):
        result = json.loads(path.read_text())
        result["machine"] = {**result["machine"], "gpu": "Test GPU"}
        (gpu / path.name).write_text(json.dumps(result))
    bench.main([*args, "--report-budget", "1", "2", "--update-readme", str(readme)])
    text = readme.read_text()
    assert "| 1 it. source | 2 it. (Test GPU) target | 2 it. (Test GPU) source |" in text
    assert re.search(r"\| erm \| main \| [0-9.]+ \(1\) \| [0-9.]+ \| [0-9.]+ \(1\) \|", text)


def test_lr_selection_writes_one_file_per_lr_and_seed_and_the_summary(bench, tmp_path, capsys):
    """Leave-one-domain-out lr selection (gtav -> synthia val): a file per (lr, seed) naming the commit, and the
    summary the docs quote (mean and std over the seeds, the best mean chosen); a rerun skips what has a file."""
    # the selection trains on gtav alone with twice the batch: 8 scenes make one epoch of it
    args = [*TINY, "--num-train", "8", "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    bench.main([*args, "--select-lr", "0.01", "0.02", "--select-seeds", "304", "305"])
    folder = tmp_path / "results" / "lr_selection"
    summary = json.loads((folder / "summary.json").read_text())
    assert list(summary["mean"]) == ["0.01", "0.02"] and list(summary["seeds"]["0.01"]) == ["304", "305"]
    one = json.loads((folder / "erm-gtav-to-synthia-lr0.01-s305.json").read_text())
    assert one["synthia_val_miou"] == summary["seeds"]["0.01"]["305"] and one["seed"] == 305
    assert one["git_commit"] and one["train"] == "gtav" and one["machine"]["cpu_capability"]
    for lr, scores in summary["seeds"].items():
        assert all(0 <= v <= 100 for v in scores.values())
        assert summary["mean"][lr] == pytest.approx(sum(scores.values()) / 2)
    assert summary["chosen"] == max(summary["mean"], key=summary["mean"].get)
    stamp = (folder / "erm-gtav-to-synthia-lr0.01-s304.json").stat().st_mtime_ns
    bench.main([*args, "--select-lr", "0.01", "--select-seeds", "304"])
    assert (folder / "erm-gtav-to-synthia-lr0.01-s304.json").stat().st_mtime_ns == stamp
    assert json.loads((folder / "summary.json").read_text())["std"] == {"0.01": 0.0}


def test_lr_selection_summary_picks_the_best_mean_not_the_best_single_run(bench):
    summary = bench.lr_selection_summary({"0.01": {"304": 16.0, "305": 10.0}, "0.05": {"304": 14.0, "305": 14.0}})
    assert summary["chosen"] == "0.05" and summary["mean"] == {"0.01": 13.0, "0.05": 14.0}
    assert summary["std"]["0.05"] == 0.0


def test_bn_statistics_scores_a_grid_checkpoint_with_stored_and_recomputed_statistics(tiny_grid, tmp_path, capsys):
    root, _ = tiny_grid
    study = benchmark_script("bn_statistics")
    run = next((root / "work").glob("*/pinmem-main-s304"))
    out = tmp_path / "bn"
    argv = [str(run), "--world", str(root / "work" / "world"), "--grid-results", str(root / "results"),
            "--out", str(out), "--batches", "2", "--per-source", "2", "--threads", "1"]
    study.main(argv)
    result = json.loads((out / run.parent.name / "pinmem-main-s304.json").read_text())
    row = json.loads((root / "results" / run.parent.name / "pinmem-main-s304.json").read_text())
    assert result["stored"]["miou"] == {**row["source_miou"], **row["target_miou"]}  # the grid's evaluation
    assert result["stored"]["target_mean_miou"] == pytest.approx(row["target_mean_miou"])
    assert set(result["recomputed"]["miou"]) == {"gtav", "synthia", "cityscapes", "bdd100k", "mapillary"}
    assert result["recomputation"]["batches"] == 2 and result["git_commit"]
    bn_layers = {n.removesuffix(".running_var") for n in torch.load(run / "checkpoints" / "last.pt",
                                                                    weights_only=True)["model"]
                 if n.endswith("running_var")}
    probed = set(result["stored"]["ratios"])  # the BN layers an eval forward runs (not the memory's write)
    assert probed == set(result["recomputed"]["ratios"]) and probed <= bn_layers
    assert {n for n in bn_layers if n.startswith("backbone.")} <= probed
    stamp = (out / run.parent.name / "pinmem-main-s304.json").stat().st_mtime_ns
    study.main(argv)  # exists: skipped
    assert (out / run.parent.name / "pinmem-main-s304.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    study.main(["--report", "--out", str(out)])
    assert "| i1 | pinmem-main | 1 |" in capsys.readouterr().out
