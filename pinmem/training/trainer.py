"""The trainer: one loop for every method, exact resume, data parallelism with ``torchrun``.

``Trainer(config).fit()`` builds the data (a multi-domain loader over the sources, docs/method.md §6), the model,
the method and SGD with the ``exp``/``poly`` schedule, and lets the method prepare
(:meth:`~pinmem.methods.base.Method.before_training`: Pin the Memory initialises its memory from class means);
then runs ``train.iterations`` iterations with a progress bar, JSON-lines and TensorBoard logs, optional periodic
validation and checkpoints, and a final validation on the targets. ``Trainer(config, checkpoint).fit()``
continues a run: weights (the memory included), optimiser, schedule, scaler, method state, RNG states and data
position come from the checkpoint, so a resumed run follows the uninterrupted one bit for bit (CPU, same seed).
The per-iteration work around the method's step is kept free of host-device synchronisation
(:mod:`pinmem.training.hot_path`): pinned, prefetched batches copied with ``non_blocking``, losses read every
``train.log_every`` iterations, and the one synchronisation of the finiteness check.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pinmem.data import build_dataset, build_training_dataset
from pinmem.data.sampling import BadBatch, SamplerConfig, build_train_loader
from pinmem.data.transforms import TrainTransform
from pinmem.engine.config import Config, model_kwargs, to_dict, to_yaml
from pinmem.engine.distributed import DistContext, convert_sync_batchnorm, init_distributed
from pinmem.engine.method_specs import method_spec
from pinmem.errors import ConfigError
from pinmem.evaluation.evaluate import evaluate, merge_results
from pinmem.methods import build_method
from pinmem.models import build_model
from pinmem.runtime import autocast
from pinmem.training.checkpoint import Resume, load_weights, save_checkpoint
from pinmem.training.faults import (
    BadSampleError,
    SkipCounter,
    StopRequest,
    TrainingDiverged,
    TrainingInterrupted,
    bad_sample_error,
    diverged,
    interrupted,
    step_flags,
)
from pinmem.training.hot_path import compile_encoder, cudnn_benchmark, loss_tensors, loss_values, to_device
from pinmem.training.logging import MetricLogger
from pinmem.training.rng import rng_state, seed_everything, set_rng_state

log = logging.getLogger("pinmem")
__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted", "BadSampleError"]


def learning_rate(config: Config, iteration: int) -> float:
    """lr_t: ``exp`` = lr·exp(−rate·t/horizon) (released), ``poly`` = lr·(1 − t/T)^power."""
    t = config.train
    if t.schedule == "exp":
        return t.lr * math.exp(-t.exp_rate * iteration / t.exp_horizon)
    return t.lr * (1.0 - min(iteration, t.iterations) / t.iterations) ** t.poly_power


DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def disable_dropout(model: nn.Module) -> None:
    """p = 0 in every dropout layer (``train.stochastic=false``)."""
    for module in model.modules():
        if isinstance(module, DROPOUT_TYPES):
            module.p = 0.0


class Trainer:
    """Trains ``config.method`` on ``config.data.sources``; see the module docstring."""

    def __init__(self, config: Config, resume: Resume | None = None, context: DistContext | None = None) -> None:
        """``resume``: the run to continue (:func:`~pinmem.training.checkpoint.open_resume`; its configuration is
        ``config``), or None for a new run."""
        self.resume = resume
        self.checkpoint = resume.checkpoint if resume else None
        self.config = config
        self.context = context or init_distributed(config.train.device)
        if config.train.amp == "fp16" and (self.context.device.type != "cuda"
                                           or "fp16" not in method_spec(config.method).amp_modes):
            raise ConfigError("train.amp=fp16 needs a GPU and a method without an inner gradient step "
                              "(erm, ibn, isw); use train.amp=bf16")
        self.out_dir = Path(config.train.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.start_iteration = int(self.checkpoint["iteration"]) if self.checkpoint else 0
        seed_everything(config.train.seed)
        self._val_sets: dict[str, Any] = {}
        self.stop = StopRequest()  # entered by fit(): SIGTERM/SIGUSR1/Ctrl-C stop after the current iteration
        self.stop_agreed = False  # some rank asked to stop (agreed in the step's finiteness check)
        self.skips = SkipCounter(int(self.checkpoint.get("skipped_samples", 0)) if self.checkpoint else 0)

        self.sources = self._training_sets()
        self.sampler_config = SamplerConfig(
            epoch_length=config.data.epoch_length, batch_per_domain=config.train.batch_per_domain,
            seed=config.train.seed, rank=self.context.rank, world_size=self.context.world_size,
            iterations=config.train.iterations,
        )
        self.model = self._model()
        self.compiled = compile_encoder(self.model) if config.train.compile else None  # falls back with a warning
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(self.parameters, lr=config.train.lr, momentum=config.train.momentum,
                                         weight_decay=config.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda t: learning_rate(config, t) / config.train.lr)
        self.scaler = torch.amp.GradScaler(self.context.device.type, enabled=config.train.amp == "fp16")
        # Created last, so that a bad dataset root or model setting leaves no out_dir behind (issue 11, point 7).
        self.logger = MetricLogger(self.out_dir, enabled=self.context.is_main)
        self.method = build_method(config, self.model, self.context)
        self.method.attach_data(list(self.sources.values()), self.sampler_config.iterations_per_epoch)
        if self.checkpoint:
            self._restore_training_state()

    # ------------------------------------------------------------------ set-up
    def _training_sets(self) -> dict[str, Any]:
        cfg = self.config
        sets = {}
        for position, name in enumerate(cfg.data.sources):
            strong = cfg.data.strong_jitter == "all_sources" or (cfg.data.strong_jitter == "first_source"
                                                                  and position == 0)
            transform = TrainTransform(crop_size=cfg.train.crop_size, strong_jitter=strong)
            sets[name] = build_training_dataset(name, cfg.dataset_root(name), "train", transform)
        return sets

    def _model(self) -> nn.Module:
        cfg, ctx = self.config, self.context
        load_backbone = self.checkpoint is None
        model = build_model(**model_kwargs(cfg, load_backbone=load_backbone),
                            memory_reduce=ctx.all_reduce if ctx.distributed else None)
        if not cfg.train.stochastic:
            disable_dropout(model)
        if self.resume:
            load_weights(model, self.resume.checkpoint, self.resume.path, cfg)
        model = convert_sync_batchnorm(model.to(getattr(torch, cfg.train.dtype)), ctx).to(ctx.device)
        ctx.broadcast_module(model)
        if cfg.train.channels_last:  # the 4-D weights; the batches follow in to_device
            model = model.to(memory_format=torch.channels_last)
        return model.train()

    def _restore_training_state(self) -> None:
        ckpt = self.checkpoint
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.method.load_state_dict(ckpt.get("method", {}))

    def before_training(self) -> None:
        """The method's preparation before the first iteration of a new run (:meth:`Method.before_training`; Pin
        the Memory initialises its memory), then the check of what it prepared."""
        self.method.before_training(self.data_pass)
        self.check_state("before training, after the method's preparation")

    def data_pass(self, iterations: int, seed: int, what: str) -> Iterator[dict[str, Any]]:
        """``iterations`` batches of the training data drawn with ``seed``, on the device, for a method's pass
        before training (:data:`~pinmem.methods.base.DataPass`): a bad sample or a stop request ends it (nothing
        was trained or saved yet); skipped samples are counted."""
        cfg, ctx = self.config, self.context
        sampler = SamplerConfig(epoch_length=cfg.data.epoch_length, batch_per_domain=cfg.train.batch_per_domain,
                                seed=seed, rank=ctx.rank, world_size=ctx.world_size, iterations=iterations)
        for batch in tqdm(self.loader(sampler), total=iterations, desc=what, disable=not self._bar()):
            if isinstance(batch, BadBatch):
                raise BadSampleError(f"{'; '.join(batch.errors)} (met by the {what}: nothing was trained or "
                                     "saved). Replace the file or set data.on_bad_sample=skip")
            if self.stop.requested:
                raise TrainingInterrupted(f"{self.stop.signal_name} during the {what}: nothing was trained or "
                                          "saved; run the same command again (without --resume)")
            self.skips.add(batch)
            yield self.to_device(batch)

    # ------------------------------------------------------------------ the loop
    def _bar(self) -> bool:
        return self.context.is_main and self.config.train.progress

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.config.train.amp, self.context.device)  # the one helper, shared with evaluation

    def fit(self) -> dict[str, Any]:
        """Train to ``train.iterations``; returns the final validation results (per target) if any."""
        cfg, ctx = self.config, self.context
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(to_yaml(cfg))
        # SIGTERM, SIGUSR1, Ctrl-C: finish the iteration, write last.pt, TrainingInterrupted; cuDNN's algorithm
        # search for the fixed training crops (on CUDA; off again for validation's whole images)
        with self.stop, cudnn_benchmark(ctx.device):
            if self.checkpoint is None:
                self.before_training()
            iteration = self.train_loop()
        results = self.validate(iteration) if cfg.data.targets else {}
        self.logger.close()
        return results

    def train_loop(self) -> int:
        """Iterations from the start (or the checkpoint's) to ``train.iterations``, then ``last.pt``."""
        cfg, ctx = self.config, self.context
        loader = self.loader(self.sampler_config, self.start_iteration)
        batches = iter(loader)
        if self.checkpoint is not None:  # after the loader exists, so that nothing advances the RNGs afterwards
            set_rng_state(self.checkpoint["rng"])
        total = cfg.train.iterations
        bar = tqdm(total=total, initial=self.start_iteration, desc=f"train {cfg.method}", disable=not self._bar(),
                   dynamic_ncols=True)
        iteration = self.start_iteration
        try:
            while iteration < total:
                losses = self.train_step(self.usable(next(batches), iteration), iteration)
                iteration += 1
                bar.update(1)
                if iteration % cfg.train.log_every == 0 or iteration == total:
                    # the only read of the losses (and the method's diagnostics): every log_every iterations
                    scalars = loss_values({**losses, **self.method.diagnostics})
                    scalars["lr"] = self.optimizer.param_groups[0]["lr"]
                    if cfg.data.on_bad_sample == "skip":
                        scalars["skipped_samples"] = self.skips.total(self.context)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items()})
                    self.logger.log(iteration, scalars)
                numbered = bool(cfg.train.ckpt_every) and (iteration % cfg.train.ckpt_every == 0 or iteration == total)
                if self.stop_agreed or (self.stop.requested and not ctx.distributed):
                    self.stop_after(iteration, numbered)
                if numbered and iteration < total:
                    self.save(iteration, numbered=True)
                if cfg.train.val_every and iteration % cfg.train.val_every == 0 and iteration < total:
                    with cudnn_benchmark(ctx.device, enabled=False):  # whole images of varying sizes
                        self.validate(iteration)
        finally:
            bar.close()
            del batches, loader  # the workers shut down now, also when an exception leaves the loop
        self.save(iteration, numbered=bool(cfg.train.ckpt_every))
        return iteration

    def loader(self, sampler: SamplerConfig, start_iteration: int = 0) -> torch.utils.data.DataLoader:
        """The training data of ``sampler`` from ``start_iteration``: pinned batches on CUDA (asynchronous copies),
        ``data.prefetch_factor`` batches ahead per worker."""
        cfg = self.config
        return build_train_loader(self.sources, sampler, start_iteration=start_iteration,
                                  num_workers=cfg.data.num_workers, pin_memory=self.context.device.type == "cuda",
                                  prefetch_factor=cfg.data.prefetch_factor, on_bad_sample=cfg.data.on_bad_sample)

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Images and labels on the training device (``non_blocking``), images in ``train.dtype`` and, with
        ``train.channels_last``, in channels-last format."""
        cfg = self.config
        return to_device(batch, self.context.device, getattr(torch, cfg.train.dtype), cfg.train.channels_last)

    def usable(self, batch: dict[str, Any] | BadBatch, iteration: int) -> dict[str, Any]:
        """The batch, its skipped samples counted; a :class:`BadBatch` (``data.on_bad_sample=stop``) on any rank
        writes ``last.pt`` (the ``iteration`` iterations done) and raises :class:`BadSampleError`."""
        bad = isinstance(batch, BadBatch)
        if self.context.distributed:  # every rank stops before the same iteration (a sync only with several ranks)
            bad_anywhere = bool(self.context.sum_(torch.full((1,), float(bad), device=self.context.device)).item())
        else:
            bad_anywhere = bad
        if not bad_anywhere:
            self.skips.add(batch)
            return batch
        self.save(iteration)
        raise bad_sample_error(batch.errors if bad else (), iteration, self.ckpt_dir / "last.pt")

    def stop_after(self, iteration: int, numbered: bool) -> None:
        """A stop signal: write ``last.pt`` (and the numbered checkpoint when one is due), log, raise."""
        self.save(iteration, numbered=numbered)
        raise interrupted(self.stop.signal_name, iteration, self.config.train.iterations, self.ckpt_dir / "last.pt")

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, torch.Tensor | float]:
        """One iteration: the method's gradients, averaged over ranks, one SGD step, the method's commit (both under
        autocast: meta-train, meta-test, M' and the commit's write). Returns the loss terms unread (tensors, or
        floats from a method that returns floats), so that no iteration waits for the device to read them."""
        batch = self.to_device(batch)
        lr = self.optimizer.param_groups[0]["lr"]
        self.context.seed_noise(self.config.train.seed, iteration)  # several ranks: each its own Gumbel/dropout noise
        self.method.before_step(iteration)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            losses = self.method.step(batch, iteration, lr)
        self._check_finite(losses, iteration)
        self.scaler.unscale_(self.optimizer)
        self.context.average_gradients(self.parameters)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with self._autocast():
            self.method.after_step(iteration)
        return losses

    def _check_finite(self, losses: dict[str, torch.Tensor | float], iteration: int) -> None:
        """Stop on a NaN/inf loss term or unit of the method's own state (:meth:`Method.nonfinite_state`, e.g. the
        memory this step read: the previous commit's), and agree over the ranks on a stop request, with the step's
        one host-device sync (:func:`step_flags`)."""
        state = self.method.nonfinite_state()
        losses = loss_tensors(losses, self.context.device)
        flags = step_flags(losses, state, self.stop.requested, self.context.device)
        flags = self.context.sum_(flags).cpu().tolist()
        self.stop_agreed = flags[-1] > 0
        bad_losses = {n: float(losses[n]) for n, flag in zip(losses, flags, strict=False) if flag}
        bad_state = [s for s, flag in enumerate(flags[len(losses) : -1]) if flag]
        if bad_losses or bad_state:
            state_words = self.method.describe_state(bad_state) if bad_state else None
            raise diverged(bad_losses, state_words, f"at iteration {iteration + 1}", self.ckpt_dir)

    def check_state(self, when: str) -> None:
        """:class:`TrainingDiverged` naming the units of the method's own state that hold NaN or infinity (before a
        checkpoint is written, so that none holds a broken state; the state is the same on every rank)."""
        state = self.method.nonfinite_state()
        bad = [] if state is None else torch.nonzero(state).flatten().tolist()
        if bad:
            raise diverged({}, self.method.describe_state(bad), when, self.ckpt_dir)

    # ------------------------------------------------------------------ checkpoints and validation
    def save(self, iteration: int, numbered: bool = False) -> None:
        """Write ``last.pt`` (and ``iter_NNNNNN.pt``); every rank calls it, rank 0 writes. A memory holding NaN or
        infinity is never written: :class:`TrainingDiverged` instead."""
        self.check_state(f"after iteration {iteration}")
        skipped = self.skips.total(self.context)
        if not self.context.is_main:
            return
        payload = {
            "config": to_dict(self.config),
            "model": self.model.state_dict(),
            "iteration": iteration,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rng_state(),
            "method": self.method.state_dict(),
            "skipped_samples": skipped,
        }
        save_checkpoint(self.ckpt_dir / "last.pt", payload)
        if numbered:
            save_checkpoint(self.ckpt_dir / f"iter_{iteration:06d}.pt", payload)

    def validate(self, iteration: int) -> dict[str, Any]:
        """mIoU on every target's val split (whole image, the protocol's sizes); ranks share the images."""
        cfg, ctx = self.config, self.context
        results: dict[str, Any] = {}
        rng = rng_state()  # validation must not perturb the training stream
        self.model.eval()
        for name in cfg.data.targets:
            if name not in self._val_sets:  # list the files once, not at every periodic validation
                self._val_sets[name] = build_dataset(name, cfg.dataset_root(name), "val")
            dataset = self._val_sets[name]
            shard = torch.utils.data.Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
            part = evaluate(self.model, shard, mode="whole", device=ctx.device, amp=cfg.train.amp,
                            channels_last=cfg.train.channels_last, progress=self._bar(), name=name)
            result = merge_results([part], reduce=lambda t: ctx.sum_(t.to(ctx.device)))
            result.split = "val"
            results[name] = result
            self.logger.log(iteration, {f"{name}/miou": result.miou}, kind="val")
            if ctx.is_main:
                log.info("iteration %d: %s val mIoU %.2f", iteration, name, 100 * result.miou)
        self.model.train()
        set_rng_state(rng)
        return results

