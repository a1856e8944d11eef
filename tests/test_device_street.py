"""The street-world grid's GPU edition (benchmarks/device_street.sh) at toy size on the CPU: the world is prepared
once, a probe times the runs and the budget is the largest that fits (--iterations auto), the runs go in parallel,
every result names its device, the report and the archive for $OUT are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import BENCHMARKS


def test_tiny_cpu_run_writes_every_result_the_report_and_the_archive(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PY": sys.executable, "OUT": str(out)}
    done = subprocess.run(["bash", str(BENCHMARKS / "device_street.sh"), "--tiny", "--device", "cpu",
                           "--parallel", "3", "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"),
                           "--iterations", "auto", "--probe", "3", "--budgets", "100000 2", "--deadline", "590"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = tmp_path / "results" / "resnet18_scratch_i2_c32_b4_lr0.01"
    files = sorted(p.name for p in folder.glob("*.json"))
    assert files == ["erm-main-s304.json", "mldg-main-s304.json", "pinmem-main-s304.json"]
    for name in files:
        result = json.loads((folder / name).read_text())
        assert result["machine"]["device"] == "cpu" and result["iterations"] == 2
        assert result["torch_threads"] == 1
    assert (folder / "REPORT.md").is_file() and "| pinmem | main" in (folder / "REPORT.md").read_text()
    assert len(list((tmp_path / "results" / "world").glob("*.sha256"))) == 1  # prepared once, before the runs
    with tarfile.open(out / "street_gpu.tar.gz") as archive:
        names = archive.getnames()
    assert any(n.endswith("pinmem-main-s304.json") for n in names) and any(n.endswith(".log") for n in names)
    assert "== budget: 2 iterations" in done.stdout  # 100,000 does not fit in the deadline
    assert "(0 stopped or failed" in done.stdout
    assert any(n.endswith("probe/logs/pinmem-main-s304.log") for n in names)
    assert not (tmp_path / "results" / "resnet18_scratch_i100000_c32_b4_lr0.01").exists()


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(BENCHMARKS / "device_street.sh")], check=True)
    subprocess.run(["bash", "-n", str(BENCHMARKS / "device_env.sh")], check=True)
    subprocess.run(["bash", "-n", str(BENCHMARKS / "street_verdict.sh")], check=True)
