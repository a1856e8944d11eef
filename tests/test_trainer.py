"""The trainer as users run it: every method learns, runs resume exactly, 2 ranks equal 1 rank with twice the
batch, a NaN stops training cleanly, configs are validated."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinmem.cli import main
from pinmem.data.examples import write_examples
from pinmem.data.sampling import build_train_loader
from pinmem.engine.config import load_config
from pinmem.training.checkpoint import load_checkpoint
from pinmem.training.trainer import Trainer, TrainingDiverged

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on two cores: one thread each


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_examples(root, num_train=6, num_val=2, size=(64, 48), seed=3)
    return root


def base(root, *extra):
    return ["model.backbone=resnet18", f"data.root={root}", "data.targets=[]", "train.crop_size=32",
            "train.batch_per_domain=2", "data.num_workers=0", "pinmem.init_images=4", "train.progress=false",
            "train.log_every=1", "data.epoch_length=16", *extra]


def _total(losses):
    return sum(float(v) for v in losses.values())


@pytest.mark.parametrize("method", ["erm", "ibn", "isw", "mldg", "pinmem"])
def test_every_method_lowers_the_loss(method, data_root, tmp_path):
    cfg = load_config(None, base(data_root, f"method={method}", f"train.out_dir={tmp_path}", "isw.start_epoch=0",
                                 "isw.trials=1", "isw.images_per_trial=2"))
    trainer = Trainer(cfg)
    trainer.before_training()
    batch = next(iter(build_train_loader(trainer.sources, trainer.sampler_config)))
    first = trainer.train_step(batch, 0)
    for i in range(1, 8):
        last = trainer.train_step(batch, i)
    assert _total(last) < 0.9 * _total(first), (first, last)
    if method == "isw":
        assert "isw" in last and len(trainer.method.masks) == 3  # stem, layer1, layer2: stage ran, loss on
        assert all(m.any() for m in trainer.method.masks)


def test_resume_continues_bit_for_bit(data_root, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *base(data_root, "method=pinmem", "train.iterations=4", f"train.out_dir={full}")]) == 0
    assert main(["train", *base(data_root, "method=pinmem", "train.iterations=2", f"train.out_dir={part}")]) == 0
    assert load_checkpoint(part / "checkpoints" / "last.pt")["iteration"] == 2
    # --resume without a path: OUT/checkpoints/last.pt; the iteration count is raised on the command line
    assert main(["train", "--resume", "train.iterations=4", f"train.out_dir={part}"]) == 0
    a, b = load_checkpoint(full / "checkpoints" / "last.pt"), load_checkpoint(part / "checkpoints" / "last.pt")
    assert a["iteration"] == b["iteration"] == 4
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert not torch.equal(a["model"]["memory.slots"], torch.zeros_like(a["model"]["memory.slots"]))


def test_two_ranks_equal_one_rank_with_twice_the_batch(data_root, tmp_path):
    # float64, and crops/batches large enough that batch norm is not degenerate: with 32² crops and one image
    # per rank (BN over 2 values in the ASPP pooling branch) a fresh network amplifies rounding by ~1e5 per
    # step (measured), in float32 even more; here the runs agree to ~1e-8 after two iterations
    common = base(data_root, "method=pinmem", "train.iterations=2", "train.stochastic=false", "train.dtype=float64")
    common = [c for c in common if not c.startswith(("train.batch_per_domain", "train.crop_size"))]
    common.append("train.crop_size=64")
    one = subprocess.run([sys.executable, "-m", "pinmem", "train", *common, "train.batch_per_domain=4",
                          f"train.out_dir={tmp_path / 'one'}"], capture_output=True, text=True, env=ENV)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "pinmem", "train", *common, "train.batch_per_domain=2",
                          f"train.out_dir={tmp_path / 'two'}"], capture_output=True, text=True, env=ENV)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], rtol=1e-6, atol=1e-7, msg=key)
        else:
            assert torch.equal(a[key], b[key]), key
    assert not list((tmp_path / "two" / "checkpoints").glob("*.tmp"))


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(data_root, tmp_path):
    cfg = load_config(None, base(data_root, "method=erm", "train.iterations=5", "train.ckpt_every=1",
                                 f"train.out_dir={tmp_path}"))
    trainer = Trainer(cfg)
    original = trainer.method.step

    def poisoned(batch, iteration, lr):
        losses = original(batch, iteration, lr)
        if iteration == 2:
            losses["seg"] = torch.tensor(float("nan"))
        return losses

    trainer.method.step = poisoned
    with pytest.raises(TrainingDiverged, match=r"seg .*iteration 3"):
        trainer.fit()
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["iteration"] == 2
    assert torch.isfinite(torch.cat([t.flatten().float() for t in last["model"].values()])).all()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "iter_000001.pt", "iter_000002.pt", "last.pt"]


def test_training_logs_and_final_validation(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", *[b for b in base(data_root, "method=erm", "train.iterations=3", f"train.out_dir={out}")
                            if not b.startswith("data.targets")], "data.targets=[cityscapes]"])
    assert code == 0
    assert "cityscapes   val mIoU" in capsys.readouterr().out
    from pinmem.training.logging import read_log

    records = read_log(out / "log.jsonl")
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert any(r["kind"] == "val" and "cityscapes/miou" in r for r in records)
    assert (out / "config.yaml").is_file()


def test_config_errors_are_clear(capsys, tmp_path):
    assert main(["train", "train.lrr=0.1"]) == 2
    assert "did you mean 'train.lr'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: pinmem\nmodel:\n  backbon: resnet50\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "model.backbon" in err and "Traceback" not in err
    assert main(["train", "method=pinmem", "model.memory=false", f"data.root={tmp_path}"]) == 2
    assert main(["train", "--resume", f"train.out_dir={tmp_path / 'none'}"]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err


def test_every_shipped_config_loads():
    configs = sorted(Path("configs").rglob("*.yaml"))
    assert len(configs) == 17
    for path in configs:
        cfg = load_config(path)
        assert cfg.data.targets == ["cityscapes", "bdd100k", "mapillary"]
