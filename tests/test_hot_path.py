"""The GPU-ready hot path of the trainer, checked on CPU (issue 12, point 2; docs/training.md "GPU options"): the
loader's settings, non-blocking copies, channels-last parity, cuDNN's benchmark flag, reading the losses only when
they are logged, bf16 autocast over the whole step and commit, and ``train.compile`` with its fallback."""

from __future__ import annotations

import functools
import json
import logging
import os

import pytest
import torch
from conftest import benchmark_script

from pinmem.data.examples import write_examples
from pinmem.data.sampling import build_train_loader
from pinmem.engine.config import load_config
from pinmem.engine.config_checks import compile_checked_with_meta_learning
from pinmem.engine.distributed import DistContext
from pinmem.errors import ConfigError
from pinmem.training import hot_path
from pinmem.training import trainer as trainer_module
from pinmem.training.trainer import Trainer, TrainingDiverged


def autocast_enabled_on_cpu() -> bool:
    """``torch.is_autocast_enabled("cpu")``; torch < 2.4 (``make test-oldest``) has only ``is_autocast_cpu_enabled``."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_examples(root, num_train=8, num_val=2, size=(96, 96), seed=3)
    return root


def make_trainer(root, tmp_path, *extra: str) -> Trainer:
    overrides = ["model.backbone=resnet18", f"data.root={root}", "data.targets=[]", "train.crop_size=32",
                 "train.batch_per_domain=2", "data.num_workers=0", "pinmem.init_images=4", "train.progress=false",
                 "data.epoch_length=16", "train.stochastic=false", f"train.out_dir={tmp_path}", *extra]
    trainer = Trainer(load_config(None, overrides))
    trainer.before_training()
    return trainer


def first_batch(trainer: Trainer):
    return next(iter(build_train_loader(trainer.sources, trainer.sampler_config)))


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], rtol=rtol, atol=atol, msg=lambda m, key=key: f"{key}: {m}")
        else:
            assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------------------------- the loader
def test_the_loader_pins_on_cuda_prefetches_and_keeps_its_workers(data_root, tmp_path, monkeypatch):
    trainer = make_trainer(data_root, tmp_path, "method=erm", "data.num_workers=2", "data.prefetch_factor=3")
    loader = trainer.loader(trainer.sampler_config)
    assert (loader.num_workers, loader.prefetch_factor, loader.persistent_workers) == (2, 3, True)
    assert not loader.pin_memory  # CPU training: nothing to pin for
    seen = {}
    monkeypatch.setattr(trainer_module, "build_train_loader", lambda *args, **kwargs: seen.update(kwargs))
    trainer.context = DistContext(device=torch.device("cuda"))  # only read by loader(): no CUDA needed
    trainer.loader(trainer.sampler_config, 5)
    assert seen["pin_memory"] is True and seen["prefetch_factor"] == 3 and seen["start_iteration"] == 5


class Recorder(torch.Tensor):
    """Records the keyword arguments of every ``Tensor.to`` call made on it."""

    calls: list[dict] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.to:
            cls.calls.append(dict(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs or {})


def test_batches_go_to_the_device_non_blocking_in_the_training_format():
    batch = {d: {"image": torch.rand(2, 3, 8, 8).as_subclass(Recorder),
                 "label": torch.zeros(2, 8, 8, dtype=torch.long).as_subclass(Recorder),
                 "index": torch.tensor([3, 4]), "skipped": ["a file"]} for d in ("gtav", "synthia")}
    Recorder.calls = []
    moved = hot_path.to_device(batch, torch.device("cpu"), torch.float64, channels_last=True)
    copies = [call for call in Recorder.calls if "non_blocking" in call]
    assert len(copies) == 4 and all(call["non_blocking"] for call in copies)  # 2 images, 2 label maps
    for d in batch:
        image = moved[d]["image"]
        assert image.dtype == torch.float64 and image.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(image, batch[d]["image"].double())
        assert moved[d]["label"] is batch[d]["label"] and moved[d]["skipped"] == ["a file"]  # CPU: no copy


# ---------------------------------------------------------------------------------------------------- channels_last
def state_vector(trainer: Trainer) -> torch.Tensor:
    """Every floating-point entry of the model's state (weights, BN statistics, memory) in one float64 vector."""
    return torch.cat([v.detach().flatten().double() for v in trainer.model.state_dict().values()
                      if v.is_floating_point()])


@pytest.mark.parametrize(("dtype", "method", "tolerance"), [
    ("float64", "erm", 1e-10), ("float64", "pinmem", 1e-7), ("float32", "erm", 2e-4)])
def test_channels_last_gives_the_same_step(dtype, method, tolerance, data_root, tmp_path):
    """One step with and without ``train.channels_last`` from the same start: the same losses and the same change
    of the whole state (‖Δa − Δb‖ / ‖Δa‖). Measured: float64 3e-14 (erm), 1e-9 (pinmem), float32 erm 2e-5. Not
    float32 meta-learning: on these 32² crops with 2 images per domain the inner step amplifies rounding ~1e5×
    (BN over 2-8 values; docs/training.md "Distributed"), so the layouts' different float32 summation orders alone move
    mldg/pinmem's first update by 3-11 % (float64: the 1e-9 above, the same arithmetic)."""
    common = [f"method={method}", f"train.dtype={dtype}"]
    plain = make_trainer(data_root, tmp_path / "plain", *common)
    nhwc = make_trainer(data_root, tmp_path / "nhwc", *common, "train.channels_last=true")
    assert nhwc.model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    start = state_vector(plain)
    torch.testing.assert_close(state_vector(nhwc), start, rtol=0, atol=1e-12 if dtype == "float64" else 1e-6)
    batch = first_batch(plain)
    a, b = plain.train_step(batch, 0), nhwc.train_step(batch, 0)
    assert hot_path.loss_values(b) == pytest.approx(hot_path.loss_values(a), rel=tolerance)
    change_a, change_b = state_vector(plain) - start, state_vector(nhwc) - start
    assert ((change_b - change_a).norm() / change_a.norm()).item() < tolerance


# ---------------------------------------------------------------------------------------------------- cuDNN
def test_cudnn_benchmark_is_set_on_cuda_only_and_restored():
    before = torch.backends.cudnn.benchmark
    with hot_path.cudnn_benchmark(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == before
    with hot_path.cudnn_benchmark(torch.device("cuda")):  # a device object: the flag needs no GPU
        assert torch.backends.cudnn.benchmark is True
        with hot_path.cudnn_benchmark(torch.device("cuda"), enabled=False):  # the trainer's validation
            assert torch.backends.cudnn.benchmark is False
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before


# ---------------------------------------------------------------------------------------------------- host reads
class Watched(torch.Tensor):
    """Counts the reads of a value to the host (what waits for the device on a GPU)."""

    reads = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__float__, torch.Tensor.__bool__):
            cls.reads += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_losses_are_read_once_per_log_and_the_step_reads_once(data_root, tmp_path):
    trainer = make_trainer(data_root, tmp_path, "method=pinmem", "train.iterations=6", "train.log_every=3")
    original = trainer.method.step

    def watched(batch, iteration, lr):
        return {k: v.as_subclass(Watched) for k, v in original(batch, iteration, lr).items()}

    trainer.method.step = watched
    Watched.reads = 0
    trainer.train_loop()
    # one read per iteration: the finiteness check and stop agreement (faults.step_flags); one per log (all the
    # loss terms stacked): 6 + 2. Reading every term at every iteration would be 6 × (5 + 1).
    assert Watched.reads == 6 + 2
    logged = [line for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"read_mtr"' in line]
    assert len(logged) == 2


def test_a_method_may_return_floats(data_root, tmp_path):
    trainer = make_trainer(data_root, tmp_path, "method=erm", "train.iterations=2", "train.log_every=1")
    original = trainer.method.step
    trainer.method.step = lambda batch, i, lr: {k: float(v) for k, v in original(batch, i, lr).items()}
    trainer.train_loop()
    assert (tmp_path / "log.jsonl").read_text().count('"seg"') == 2
    trainer.method.step = lambda batch, i, lr: {"seg": float("nan"), "other": 1.0}
    with pytest.raises(TrainingDiverged, match=r"seg .*iteration 1\b"):
        trainer.train_step(first_batch(trainer), 0)


# ---------------------------------------------------------------------------------------------------- autocast
def test_bf16_autocast_covers_the_step_and_the_commit_and_the_class_sums_stay_float32(data_root, tmp_path):
    trainer = make_trainer(data_root, tmp_path, "method=pinmem", "train.amp=bf16")
    memory = trainer.model.memory
    original = memory.update_sums
    writes = []

    def class_sums(feature, labels):
        sums, counts = original(feature, labels)
        writes.append((autocast_enabled_on_cpu(), sums.dtype, counts.dtype))
        return sums, counts

    memory.update_sums = class_sums
    trainer.train_step(first_batch(trainer), 0)
    # M̂ (the meta-train forward), M' (meta-test) and M* (the commit, in after_step): all under autocast,
    # their class sums in float32
    assert writes == [(True, torch.float32, torch.float32)] * 3
    assert memory.slots.dtype == torch.float32 and torch.isfinite(memory.slots).all()


# ---------------------------------------------------------------------------------------------------- compile
def test_compile_with_second_order_meta_learning_is_refused():
    with pytest.raises(ConfigError, match="double backward"):
        load_config(None, ["method=mldg", "meta.first_order=false", "train.compile=true"])
    load_config(None, ["method=erm", "meta.first_order=false", "train.compile=true"])  # no inner step: fine


def failing_compile(fn, **kwargs):
    def call(*args, **kw):
        raise RuntimeError("InductorError: no working C++ compiler found")

    return call


def refusing_compile(fn, **kwargs):
    raise RuntimeError("torch.compile is not supported on this platform")


@pytest.mark.parametrize("compile_", [failing_compile, refusing_compile], ids=["at the first call", "at once"])
def test_compile_falls_back_with_a_warning_naming_the_exception(compile_, data_root, tmp_path, monkeypatch, caplog):
    method = "method=mldg" if compile_checked_with_meta_learning() else "method=erm"  # older torch: refused
    eager = make_trainer(data_root, tmp_path / "eager", method)
    monkeypatch.setattr(torch, "compile", compile_)
    with caplog.at_level(logging.WARNING, logger="pinmem"):
        compiled = make_trainer(data_root, tmp_path / "compiled", method, "train.compile=true")
        batch = first_batch(eager)
        a, b = eager.train_step(batch, 0), compiled.train_step(batch, 0)
    assert not compiled.compiled.active
    warnings = [r.getMessage() for r in caplog.records if "train.compile" in r.getMessage()]
    assert len(warnings) == 1 and "RuntimeError" in warnings[0] and "uncompiled" in warnings[0], warnings
    assert hot_path.loss_values(a) == hot_path.loss_values(b)
    assert_same_state(weights(eager), weights(compiled), rtol=0, atol=0)


def compiled_matches_eager(data_root, tmp_path, method: str, steps: int, tolerance: float) -> None:
    """``steps`` float64 steps with and without ``train.compile``: the same losses and the same change of the whole
    state (‖Δa − Δb‖ / ‖Δa‖), from the compiled encoder (no fallback)."""
    common = [f"method={method}", "train.dtype=float64"]
    eager = make_trainer(data_root, tmp_path / "eager", *common)
    compiled = make_trainer(data_root, tmp_path / "compiled", *common, "train.compile=true")
    assert compiled.model.state_dict().keys() == eager.model.state_dict().keys()
    start = state_vector(eager)
    batches = iter(build_train_loader(eager.sources, eager.sampler_config))
    for i in range(steps):
        batch = next(batches)
        a, b = eager.train_step(batch, i), compiled.train_step(batch, i)
        assert hot_path.loss_values(b) == pytest.approx(hot_path.loss_values(a), rel=tolerance)
    assert compiled.compiled.active  # no fallback: the numbers above came from the compiled encoder
    change_a, change_b = state_vector(eager) - start, state_vector(compiled) - start
    assert ((change_b - change_a).norm() / change_a.norm()).item() < tolerance


def test_compiled_encoder_under_functional_call_gives_the_same_step(data_root, tmp_path, monkeypatch):
    """Dynamo's graph capture and AOTAutograd (the ``aot_eager`` backend: everything but the C++ code generation,
    seconds instead of minutes on CPU): MLDG's θ′ swapped in by ``functional_call`` on copies of the BN buffers.
    On a torch older than the one this was checked with, the configuration refuses the combination instead."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    if not compile_checked_with_meta_learning():
        with pytest.raises(ConfigError, match="train.compile=true with method mldg needs torch"):
            make_trainer(data_root, tmp_path / "old", "method=mldg", "train.compile=true")
        return
    compiled_matches_eager(data_root, tmp_path, "mldg", steps=1, tolerance=1e-12)


@pytest.mark.skipif(os.environ.get("PINMEM_COMPILE_TESTS") != "1",
                    reason="inductor compiles for ~130 s on the 2-core CPU (~17 s once its cache in /tmp is warm); "
                           "set PINMEM_COMPILE_TESTS=1")
def test_inductor_compiled_pinmem_gives_the_same_steps(data_root, tmp_path):
    """The real compiler (inductor, C++ on CPU) on Pin the Memory's first-order step: meta-train, M′ under
    ``no_grad`` with θ′, the meta-test forward on θ′, the eval-mode commit. float64, so that the comparison is not
    swamped by float32 rounding amplified through the tiny BN batches (measured float32: 0.7 % on one BN bias). The
    compiler's fused, reordered reductions, amplified by the inner step, leave 1.5e-8 on the meta-test loss (plain
    forward and backward: 6e-14)."""
    compiled_matches_eager(data_root, tmp_path, "pinmem", steps=2, tolerance=1e-6)


def test_the_hot_path_benchmark_runs_at_toy_size(tmp_path):
    """``benchmarks/bench_hot_path.py`` (docs/performance.md's numbers) at toy size, so that it cannot rot."""
    out = tmp_path / "hot_path.json"
    benchmark_script("bench_hot_path").main(
        ["--size", "32", "--batch", "2", "--warmup", "1", "--repeats", "1", "--threads", "1", "--variants",
         "defaults", "channels_last", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["benchmark"] == "bench_hot_path_erm" and record["command"].startswith("python benchmarks/")
    assert set(record["results"]["variants"]) == {"defaults", "channels_last"}
    assert record["results"]["variants"]["defaults"]["ratio"] == 1.0
