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


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_a_result_file_from_an_uncommitted_tree_is_refused(tmp_path, monkeypatch, capsys):
    """Results from committed code only: a change to tracked code refuses the file (exit 2, one line naming the
    changed file, nothing written); --allow-dirty writes it marked "dirty" with the diff's hash; a changed result
    file does not count (a grid rewrites its own files)."""
    measurement = _script("measurement")
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "results" / "old.json").write_text("{}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code")
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(measurement, "REPO", repo)
    monkeypatch.delenv("PINMEM_ALLOW_DIRTY", raising=False)
    (repo / "results" / "old.json").write_text('{"rewritten": true}\n')
    assert measurement.provenance() == {"git_commit": head}

    (repo / "code.py").write_text("x = 2\n")
    out = tmp_path / "aug.json"
    argv = ["--images", "2", "--crop", "128", "--out", str(out)]
    try:
        _script("bench_augmentation").main(argv)
        raise AssertionError("an uncommitted tree was accepted")
    except SystemExit as exit_:
        assert exit_.code == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "code.py" in message and "--allow-dirty" in message
    assert not out.exists()

    _script("bench_augmentation").main([*argv, "--allow-dirty"])
    record = json.loads(out.read_text())
    assert record["git_commit"] == head + "-dirty" and record["dirty"] is True
    assert len(record["diff_sha256"]) == 64
    monkeypatch.setenv("PINMEM_ALLOW_DIRTY", "1")
    assert measurement.provenance()["diff_sha256"] == record["diff_sha256"]


def test_demo_benchmark_times_both_modes(tmp_path):
    out = tmp_path / "demo.json"
    results = _script("bench_demo").main(["--tiny", "--out", str(out)])
    record = _record(out, "bench_demo", f"python benchmarks/bench_demo.py --tiny --out {out}")
    assert record == json.loads(json.dumps(results))
    for mode in ("one after the other", "one process per method"):
        (run,) = results["runs"][mode]
        assert run["process_s"] > 0 and "report" in run
    assert "train + evaluate" in results["runs"]["one process per method"][0]
    assert "train erm" in results["runs"]["one after the other"][0]
    assert results["ratio_parallel_to_sequential"] > 0


def test_a_dirty_result_is_attested_only_when_its_diff_is_exactly_a_commit(tmp_path, monkeypatch):
    """A run from a copy whose .git lagged (the GPU machine's) records HEAD-dirty and the diff's hash; the hash is
    the change from that HEAD to the commit the copy was: attest_commit names it, and refuses any other commit, a
    clean result, and a diff that is not the commit's."""
    measurement = _script("measurement")
    street_report = _script("street_report")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("x = 2\n")
    monkeypatch.setattr(measurement, "REPO", repo)
    monkeypatch.setenv("PINMEM_ALLOW_DIRTY", "1")
    result = {"target_mean_miou": 1.0, **measurement.provenance()}  # written from the lagging copy
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    second = _git(repo, "rev-parse", "HEAD")
    assert not street_report.is_clean(result)

    attested = measurement.attest_commit(result, second[:7], repo)
    assert attested["code_commit"] == second and attested["git_commit"] == first + "-dirty"
    assert street_report.is_clean(attested)
    for commit, bad in ((first, result), (second, {"git_commit": first}),
                        (second, {**result, "diff_sha256": "0" * 64})):
        try:
            measurement.attest_commit(bad, commit, repo)
            raise AssertionError(f"attested {bad} as {commit}")
        except ValueError as exc:
            assert "diff" in str(exc)


def test_attest_commit_command_refuses_a_diff_that_is_not_the_commit(tmp_path, capsys):
    attest = _script("attest_commit")
    head = _git(Path(__file__).resolve().parent.parent, "rev-parse", "HEAD")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"git_commit": head + "-dirty", "diff_sha256": "0" * 64}))
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"git_commit": head}))
    assert attest.main([head, str(wrong), str(clean)]) == 1
    captured = capsys.readouterr()
    assert f"{wrong}: not attested" in captured.err and "already names its commit" in captured.out
    assert "code_commit" not in json.loads(wrong.read_text())  # a refused file is left as it was
