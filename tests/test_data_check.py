"""`pinmem data check` as a user runs it."""

import subprocess
import sys

import numpy as np

from pinmem.cli import main
from pinmem.data import build_dataset
from pinmem.data.io import write_png


def _run(capsys, *args):
    code = main(["data", "check", "--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_ok_prints_counts_and_frequencies(write_dataset, capsys):
    written = write_dataset("gtav", counts={"train": 2, "val": 1})
    code, out, _ = _run(capsys, "--dataset", "gtav", "--root", str(written.root))
    assert code == 0
    assert "pairs found: 3" in out and "road" in out and "bicycle" in out and out.rstrip().endswith("OK")
    code, out, _ = _run(capsys, "--dataset", "gtav", "--root", str(written.root), "--split", "val")
    assert code == 0 and "pairs found: 1" in out


def test_check_lists_every_bad_file_and_goes_on(write_dataset, capsys):
    written = write_dataset("cityscapes", counts={"train": 4})
    ds = build_dataset("cityscapes", written.root, "train", transform=lambda i, l, s: (i, l))
    corrupt = ds.files[0][0]
    corrupt.write_bytes(b"not a png")
    mismatched = ds.files[2][1]
    write_png(mismatched, np.zeros((10, 10), dtype=np.uint8))
    unknown = ds.files[3][1]
    write_png(unknown, np.full((40, 50), 250, dtype=np.uint8))
    code, out, _ = _run(capsys, "--dataset", "cityscapes", "--root", str(written.root), "--workers", "2")
    assert code == 1
    assert str(corrupt) in out
    assert str(mismatched) in out and "size mismatches" in out
    assert str(unknown) in out and "[250]" in out
    assert "checked: 4" in out and "FAILED" in out


def test_check_missing_folder_names_it(tmp_path, capsys):
    (tmp_path / "RGB").mkdir()
    code, _, err = _run(capsys, "--dataset", "synthia", "--root", str(tmp_path))
    assert code == 2
    assert str(tmp_path / "GT" / "LABELS") in err and "Traceback" not in err


def test_console_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pinmem", "data", "check", "--dataset", "bdd100k", "--root",
                          str(tmp_path / "missing")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_examples_pass_check(tmp_path, capsys):
    assert main(["data", "examples", "--out", str(tmp_path), "--num", "2", "--size", "64x32"]) == 0
    capsys.readouterr()
    for name in ("gtav", "synthia", "cityscapes", "bdd100k", "mapillary", "idd"):
        code, out, _ = _run(capsys, "--dataset", name, "--root", str(tmp_path / name))
        assert code == 0, out
        assert "pairs found: 3" in out
