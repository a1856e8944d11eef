"""The prepared GPU benchmark (benchmarks/device_check.py) at its CPU smoke size: every method is timed with its real
step, and the JSON and the Markdown table are written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import BENCHMARKS, benchmark_script

METHODS = {"erm", "mldg (1st order)", "pinmem (1st order)", "pinmem (2nd order)"}


@pytest.fixture(scope="module")
def device_check():
    return benchmark_script("device_check")


def test_tiny_cpu_run_writes_every_method_and_the_table(device_check, tmp_path: Path):
    threads = torch.get_num_threads()
    try:
        device_check.main(["--device", "cpu", "--tiny", "--threads", "1", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "device_check.json").read_text())
    assert set(record["methods"]) == METHODS
    for name, m in record["methods"].items():
        assert m["iterations_per_s"] > 0, name
        assert len(m["times_s"]) == 2, name
        assert m["projected_hours"] == pytest.approx(30463 * m["s_per_iteration_median"] / 3600), name
    assert record["args"]["backbone"] == "resnet18" and record["args"]["size"] == 64
    assert record["inference"]["ratio_median"] > 0 and record["inference"]["size"] == "128x64"
    assert record["git_commit"]
    table = (tmp_path / "device_check.md").read_text()
    assert all(f"| {name} |" in table for name in METHODS)
    assert "G+S hours" in table and "memory ÷ baseline" in table


def test_the_shell_script_parses_and_passes_its_options_through():
    script = BENCHMARKS / "device_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert 'benchmarks/device_check.py "${ARGS[@]}"' in text and 'ARGS=("$@")' in text
    assert 'cat "$OUT_DIR/device_check.md"' in text
