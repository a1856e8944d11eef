"""Faults during training (issue 11, docs/reliability.md): a stop signal, a failed checkpoint write, a bad
sample, a diverged memory, and the memory initialisation on a small dataset."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pinmem.cli import main
from pinmem.data import build_dataset, build_training_dataset
from pinmem.data.check import check_dataset, format_report
from pinmem.data.examples import write_examples
from pinmem.data.io import write_png
from pinmem.data.sampling import BadBatch, MultiDomainBatchSampler, MultiDomainDataset, SamplerConfig, SampleRef
from pinmem.data.transforms import TrainTransform
from pinmem.engine.config import load_config
from pinmem.errors import PinmemError
from pinmem.training import checkpoint as checkpoint_module
from pinmem.training.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint
from pinmem.training.faults import EXIT_PREEMPTED, BadSampleError, TrainingDiverged, TrainingInterrupted
from pinmem.training.logging import read_log
from pinmem.training.trainer import Trainer

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_examples(root, num_train=6, num_val=1, size=(64, 48), seed=3)
    return root


def base(root, *extra):
    """The tiny run of tests/test_trainer.py; ``extra`` replaces the keys it names."""
    keys = {item.split("=", 1)[0] for item in extra}
    common = ["model.backbone=resnet18", f"data.root={root}", "data.targets=[]", "train.crop_size=32",
              "train.batch_per_domain=2", "data.num_workers=0", "pinmem.init_images=4", "train.progress=false",
              "train.log_every=1", "data.epoch_length=16"]
    return [item for item in common if item.split("=", 1)[0] not in keys] + list(extra)


def assert_same_training_state(a_path, b_path):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a["iteration"] == b["iteration"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


# -- 1. stop signals ------------------------------------------------------------------------------------------------
#: `pinmem train` whose third iteration waits (up to 2 min) for a stop request, so that the test knows where the
#: signal lands; everything else is the real command
DRIVER = r"""
import sys, time
from pathlib import Path
from pinmem.training.trainer import Trainer

marker, original = Path(sys.argv[1]), Trainer.train_step

def train_step(self, batch, iteration):
    if iteration == 2:
        marker.write_text("waiting")
        deadline = time.monotonic() + 120
        while not self.stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
    return original(self, batch, iteration)

Trainer.train_step = train_step
from pinmem.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def test_sigterm_stops_after_the_iteration_and_resume_equals_an_uninterrupted_run(data_root, tmp_path):
    part, full, marker = tmp_path / "part", tmp_path / "full", tmp_path / "waiting"
    args = base(data_root, "method=pinmem", "train.iterations=5", "data.num_workers=1", f"train.out_dir={part}")
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(marker), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run never reached its third iteration"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)  # as SLURM does: the trainer and its loader worker
        _, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == EXIT_PREEMPTED, err[-3000:]
    assert "Traceback" not in err and "ConnectionResetError" not in err, err[-3000:]
    assert "stopped by SIGTERM after iteration 3 of 5" in err
    last = part / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["iteration"] == 3
    assert not list(last.parent.glob("*.tmp"))
    assert main(["train", "--resume", f"train.out_dir={part}", "data.num_workers=0"]) == 0
    assert main(["train", *base(data_root, "method=pinmem", "train.iterations=5", f"train.out_dir={full}")]) == 0
    assert_same_training_state(full / "checkpoints" / "last.pt", last)


def _signalling_trainer(data_root, tmp_path, *numbers, sent=None):
    """A trainer whose second iteration sends itself ``numbers``; ``sent`` lists those that returned."""
    config = load_config(None, base(data_root, "method=erm", "train.iterations=4", f"train.out_dir={tmp_path}"))
    trainer = Trainer(config)
    original = trainer.train_step

    def step(batch, iteration):
        if iteration == 1:
            for number in numbers:
                os.kill(os.getpid(), number)  # the handler runs before os.kill returns to this frame
                (sent if sent is not None else []).append(number)
        return original(batch, iteration)

    trainer.train_step = step
    return trainer


@pytest.mark.parametrize("name", ["SIGUSR1", "SIGINT"])
def test_sigusr1_and_a_first_ctrl_c_stop_after_the_iteration(name, data_root, tmp_path):
    handlers = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    trainer = _signalling_trainer(data_root, tmp_path, getattr(signal, name))
    with pytest.raises(TrainingInterrupted, match=f"{name} after iteration 2 of 4") as stopped:
        trainer.fit()
    assert stopped.value.exit_code == EXIT_PREEMPTED == 75
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 2
    assert {n: signal.getsignal(n) for n in handlers} == handlers  # the previous handlers are back


def test_a_second_ctrl_c_stops_at_once(data_root, tmp_path):
    before, sent = signal.getsignal(signal.SIGINT), []
    trainer = _signalling_trainer(data_root, tmp_path, signal.SIGINT, signal.SIGINT, sent=sent)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert sent == [signal.SIGINT]  # the first Ctrl-C was taken as a request, the second one interrupted
    assert not (tmp_path / "checkpoints").exists()
    assert signal.getsignal(signal.SIGINT) is before


# -- 2. a failed checkpoint write -----------------------------------------------------------------------------------
def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(data_root, tmp_path, monkeypatch, capsys):
    real_save, calls = torch.save, []

    def disk_full_on_the_third_write(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            return real_save(obj, handle, *args, **kwargs)
        handle.write(b"PK\x03\x04 the first bytes")  # part of the file reaches the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full_on_the_third_write)
    # iteration 1 writes last.pt and iter_000001.pt; iteration 2's last.pt fails
    code = main(["train", *base(data_root, "method=erm", "train.iterations=3", "train.ckpt_every=1",
                                f"train.out_dir={tmp_path}")])
    monkeypatch.undo()
    err = capsys.readouterr().err
    last = tmp_path / "checkpoints" / "last.pt"
    assert code == 2 and "Traceback" not in err
    assert f"cannot write checkpoint {last}" in err and "No space left on device" in err
    assert "the previous last.pt is unchanged" in err
    assert load_checkpoint(last)["iteration"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["iter_000001.pt", "last.pt"]  # no .tmp


def test_a_read_only_checkpoint_folder_is_named_and_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    path = save_checkpoint(folder / "last.pt", {"config": {}, "model": {"w": torch.ones(2)}, "iteration": 1})
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.touch()
            probe.unlink()
            writable = True  # root ignores the mode: have open() fail as it does for everyone else
        except PermissionError:
            writable = False
        if writable:
            def denied(file, *args, **kwargs):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))

            monkeypatch.setattr(checkpoint_module, "open", denied, raising=False)
        with pytest.raises(CheckpointWriteError) as failed:
            save_checkpoint(path, {"config": {}, "model": {"w": torch.zeros(2)}, "iteration": 2})
    finally:
        folder.chmod(0o755)
    assert isinstance(failed.value, PinmemError)
    assert str(path) in str(failed.value) and "Permission denied" in str(failed.value)
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in folder.iterdir()] == ["last.pt"]


# -- 3. bad samples ---------------------------------------------------------------------------------------------------
def _truncate(image: Path, label: Path) -> tuple[Path, str]:
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return image, "cannot decode"


def _empty(image: Path, label: Path) -> tuple[Path, str]:
    label.write_bytes(b"")
    return label, "cannot decode"


def _resize_label(image: Path, label: Path) -> tuple[Path, str]:
    write_png(label, np.zeros((10, 12), dtype=np.uint8))
    return label, "but label"


def _unknown_values(image: Path, label: Path) -> tuple[Path, str]:
    write_png(label, np.full((48, 64), 200, dtype=np.uint8))  # GTAV's table: labelIds 0..33
    return label, "does not define (200)"


BAD_FILES = {"truncated PNG": _truncate, "zero-byte label": _empty, "label of another size": _resize_label,
             "label values outside the table": _unknown_values}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_every_kind_of_bad_sample_is_named_by_training_and_by_data_check(kind, tmp_path):
    root = write_examples(tmp_path, num_train=6, num_val=1, size=(64, 48), seed=3)["gtav"]
    dataset = build_training_dataset("gtav", root, "train", TrainTransform(crop_size=32))
    bad, what = BAD_FILES[kind](*dataset.files[4])  # changed after the training set was listed
    ref = SampleRef(epoch=0, sample=0, indices=(4,), seeds=(12345,))
    stopped = MultiDomainDataset({"gtav": dataset}, "stop")[ref]
    assert isinstance(stopped, BadBatch)
    assert str(bad) in stopped.errors[0] and what in stopped.errors[0], stopped.errors
    skipping = MultiDomainDataset({"gtav": dataset}, "skip")
    first, again = skipping[ref]["gtav"], skipping[ref]["gtav"]
    assert first["index"] == again["index"] != 4 and torch.equal(first["image"], again["image"])
    assert first["skipped"] == list(stopped.errors)
    report = check_dataset("gtav", str(root), "train", progress=False)  # `pinmem data check` finds it beforehand
    assert not report.ok and str(bad) in format_report(report)


def test_unreadable_files_are_left_for_training_to_meet_not_dropped_silently(tmp_path):
    root = write_examples(tmp_path, num_train=6, num_val=1, size=(64, 48), seed=3)["gtav"]
    listed = build_dataset("gtav", root, "train")
    _empty(*listed.files[1])
    _truncate(*listed.files[2])
    assert len(build_training_dataset("gtav", root, "train")) == 6


def _bad_file_met_at(root: Path, iteration: int, corrupt) -> Path:
    """Corrupt the gtav image that the tiny run (6 images per source) reads first at ``iteration``."""
    sampler = MultiDomainBatchSampler([6, 6], SamplerConfig(epoch_length=16, batch_per_domain=2, seed=304))
    index = sampler.batch(iteration)[0].indices[0]
    return corrupt(*build_dataset("gtav", root / "gtav", "train").files[index])[0]


def test_a_bad_sample_stops_training_naming_the_file_after_writing_last_pt(tmp_path):
    write_examples(tmp_path / "data", num_train=6, num_val=1, size=(64, 48), seed=3)
    bad = _bad_file_met_at(tmp_path / "data", 2, _truncate)  # iterations 0-2 read each image once
    trainer = Trainer(load_config(None, base(tmp_path / "data", "method=erm", "train.iterations=4",
                                             f"train.out_dir={tmp_path / 'run'}")))
    with pytest.raises(BadSampleError) as stopped:
        trainer.fit()
    message = str(stopped.value)
    assert str(bad) in message and "cannot decode" in message and "before iteration 3" in message
    assert "data.on_bad_sample=skip" in message
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 2


def test_skip_draws_another_sample_logs_the_file_once_counts_it_and_resumes_exactly(tmp_path, caplog):
    write_examples(tmp_path / "data", num_train=6, num_val=1, size=(64, 48), seed=3)
    bad = _bad_file_met_at(tmp_path / "data", 1, _empty)
    common = base(tmp_path / "data", "method=pinmem", "data.on_bad_sample=skip", "pinmem.init_images=6")
    full, part = tmp_path / "full", tmp_path / "part"
    with caplog.at_level(logging.WARNING, logger="pinmem"):
        assert main(["train", *common, "train.iterations=4", f"train.out_dir={full}"]) == 0
    # met by the memory initialisation (one pass over the 6 images) and by training (8 samples), logged once
    assert len([r for r in caplog.records if str(bad) in r.getMessage()]) == 1
    counts = [r["skipped_samples"] for r in read_log(full / "log.jsonl") if r["kind"] == "train"]
    assert counts == sorted(counts) and counts[-1] >= 2
    assert main(["train", *common, "train.iterations=2", f"train.out_dir={part}"]) == 0
    assert main(["train", "--resume", "train.iterations=4", f"train.out_dir={part}"]) == 0
    assert_same_training_state(full / "checkpoints" / "last.pt", part / "checkpoints" / "last.pt")
    assert read_log(part / "log.jsonl")[-1]["skipped_samples"] == counts[-1]


# -- 4. a diverged memory ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ckpt_every", "where"), [(0, "at iteration 3"), (1, "after iteration 2")])
def test_a_non_finite_memory_slot_stops_training_and_is_named(ckpt_every, where, data_root, tmp_path):
    trainer = Trainer(load_config(None, base(data_root, "method=pinmem", "train.iterations=4", "train.log_every=100",
                                             f"train.ckpt_every={ckpt_every}", f"train.out_dir={tmp_path}")))
    commit = trainer.method.after_step

    def poisoned(iteration):
        commit(iteration)
        if iteration == 1:
            trainer.model.memory.slots[3, 5] = float("inf")  # slot 3: wall

    trainer.method.after_step = poisoned
    with pytest.raises(TrainingDiverged, match=rf"memory slot\(s\) 3 \(wall\) of Pin the Memory .*{where}"):
        trainer.fit()
    if ckpt_every:  # the checkpoint due after the poisoned iteration is not written; the one before stays
        last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
        assert last["iteration"] == 1 and torch.isfinite(last["model"]["memory.slots"]).all()
    else:
        assert not (tmp_path / "checkpoints").exists()


# -- 6. the memory initialisation on a small dataset -----------------------------------------------------------------
def test_memory_initialisation_is_one_pass_over_a_small_dataset(data_root, tmp_path, caplog):
    config = load_config(None, [b for b in base(data_root, "method=pinmem", f"train.out_dir={tmp_path}")
                                if not b.startswith("pinmem.init_images")])
    assert config.pinmem.init_images == 5950  # the default
    trainer = Trainer(config)
    memory, images = trainer.model.memory, []
    accumulate = memory.init_accumulate

    def counted(feature, labels):
        images.append(len(labels))
        assert sum(images) <= 100, "the initialisation loops over the same 6 images"
        accumulate(feature, labels)

    memory.init_accumulate = counted
    with caplog.at_level(logging.INFO, logger="pinmem"):
        trainer.before_training()
    assert sum(images) == 2 * 6  # one pass over each source's 6 images
    assert "memory initialised from 6 images per domain" in caplog.text
