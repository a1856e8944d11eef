"""The street-world DG benchmark script at toy size: one run writes a complete result file, a rerun skips it,
the gumbel_test row reuses the main run's training, and the report turns the files into the README table."""

import json

import pytest
from conftest import benchmark_script

REQUIRED = {"method", "variant", "seed", "backbone", "pretrained", "iterations", "crop", "source_val_miou",
            "target_miou", "per_class", "wall_s", "git_commit", "command"}


@pytest.fixture(scope="module")
def bench():
    return benchmark_script("dg_street")


def test_grid_has_the_papers_rows_with_three_seeds_and_the_ablations(bench):
    keys = {r.key for r in bench.grid()}
    for m in ("erm", "ibn", "isw", "mldg", "pinmem"):
        assert {f"{m}-main-s{s}" for s in (304, 305, 306)} <= keys
    for v in ("no_meta", "no_coh", "no_div", "no_gumbel_train", "gumbel_test", "bn_shared", "ibn_backbone",
              "isw_backbone", "scratch", "no_gumbel_low_tau"):
        assert f"pinmem-{v}-s304" in keys
    assert len(keys) == len(bench.grid())


def test_a_run_writes_its_result_and_a_rerun_skips_it(bench, tmp_path, capsys):
    args = ["--backbone", "resnet18", "--scratch", "--iterations", "1", "--crop", "32", "--num-train", "4",
            "--num-val", "1", "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"),
            "--threads", "1"]
    bench.main([*args, "--only", "pinmem-main-s304", "pinmem-gumbel_test-s304", "erm-main-s304"])
    folder = next((tmp_path / "results").iterdir())
    files = sorted(p.name for p in folder.glob("*.json"))
    assert files == ["erm-main-s304.json", "pinmem-gumbel_test-s304.json", "pinmem-main-s304.json"]
    result = json.loads((folder / "pinmem-main-s304.json").read_text())
    assert REQUIRED <= set(result)
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
    bench.main([*args, "--report", "--update-readme", str(readme)])
    text = readme.read_text()
    assert "old" not in text and "| pinmem | main | 1 |" in text and text.endswith("rest\n")
    assert (folder / "REPORT.md").is_file()
