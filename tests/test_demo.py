"""The demo's whole path (world → train erm and pinmem → evaluate → report) on a tiny budget."""

import json

from pinmem.cli import main


def test_demo_runs_end_to_end_and_reuses_finished_steps(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--quiet", "--workers", "1", "--processes", "2"]) == 0
    text = capsys.readouterr().out
    assert "in 2 processes at once" in text and "erm: trained in" in text
    assert "method" in text and "erm" in text and "pinmem" in text and "target mean" in text
    report = out / "report"
    summary = json.loads((report / "summary.json").read_text())["miou_percent"]
    assert set(summary) == {"erm", "pinmem"}
    assert set(summary["erm"]) >= {"gtav", "synthia", "cityscapes", "bdd100k", "mapillary", "gap"}
    markdown = (report / "report.md").read_text()
    assert "| method |" in markdown and "examples/cityscapes_0.png" in markdown
    assert (report / "examples" / "mapillary_0.png").is_file()
    assert (report / "per_class_iou.png").is_file()
    for method in ("erm", "pinmem"):
        assert (out / "runs" / method / "checkpoints" / "last.pt").is_file()
    stamp = (out / "runs" / "erm" / "checkpoints" / "last.pt").stat().st_mtime_ns
    # one after the other this time (the first run trained both at once): the finished runs are reused
    assert main(["demo", "--tiny", "--out", str(out), "--quiet", "--workers", "1", "--processes", "1"]) == 0
    assert (out / "runs" / "erm" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
