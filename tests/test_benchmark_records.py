"""The measurement benchmarks write a JSON record (git commit, exact command, load, numbers) at toy size."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import benchmark_script

_script = benchmark_script


def _record(path: Path, benchmark: str, command: str) -> dict:
    record = json.loads(path.read_text())
    assert record["benchmark"] == benchmark and record["command"] == command
    assert record["git_commit"] and record["machine"]["torch"] and record["wall_s"] >= 0
    assert len(record["load_average_before"]) == len(record["load_average_after"]) == 3
    return record["results"]


def test_augmentation_benchmark_writes_its_record(tmp_path):
    out = tmp_path / "aug.json"
    _script("bench_augmentation").main(["--images", "2", "--crop", "128", "--out", str(out)])
    results = _record(out, "bench_augmentation",
                      f"python benchmarks/bench_augmentation.py --images 2 --crop 128 --out {out}")
    assert results["images_per_s"] > 0 and results["images_per_cpu_s"] > 0


def test_eval_benchmark_writes_its_record(tmp_path):
    out = tmp_path / "eval.json"
    argv = ["--backbone", "resnet18", "--size", "64x32", "--crop", "48", "--stride", "32", "--repeats", "1",
            "--out", str(out)]
    _script("bench_eval").main(argv)
    results = _record(out, "bench_eval", "python benchmarks/bench_eval.py " + " ".join(argv))
    assert set(results["ms_per_image"]) == {"whole", "whole+flip", "slide", "slide+flip"}


def test_synth_oracle_runs_and_records_the_table(tmp_path):
    out = tmp_path / "oracle.json"
    argv = ["--steps", "2", "--train-num", "2", "--val-num", "1", "--size", "64x32", "--work", str(tmp_path),
            "--out", str(out)]
    _script("synth_oracle").main(argv)
    results = _record(out, "synth_oracle", "python benchmarks/synth_oracle.py " + " ".join(argv))
    assert set(results["miou"]) == {"gtav + synthia (ERM)", "cityscapes (oracle)"}
    assert all(len(row) == 6 for row in results["miou"].values())
    assert results["train_scenes"] == {"gtav": 2, "synthia": 2, "cityscapes": 4}
