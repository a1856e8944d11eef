"""Run by ``tests/test_distributed.py`` as ``torchrun --nproc_per_node 2 tests/multirank_worker.py DATA OUT CROP``
(gloo, CPU, float64); not a test module. Rank 0 writes ``OUT/result.json`` with two parts:

``equality`` (Gumbel noise and dropout off): for erm, mldg and pinmem every rank builds the job's 2-rank trainer
(1 image per domain and rank) and, beside it, a plain 1-rank trainer with 2 images per domain — the reference,
computed on every rank at no extra wall-clock time. It compares the initial weights and the initialised memory,
then runs ``ITERATIONS`` iterations, each starting from the reference's state (weights, buffers, memory and
momentum copied into the 2-rank trainer), and records the largest difference of the state and of the momentum
after the step, and whether the two ranks' replicas are bit-for-bit identical. Starting every iteration from the
reference checks that an iteration is the same map on 1 and on 2 ranks without letting the trajectory's own
sensitivity to rounding, which is enormous at BN-degenerate sizes (README, "Distributed"), grow the difference.

``noise`` (noise on): one Pin the Memory iteration; every rank records the Gumbel samples and the dropout masks it
drew; recorded: whether every rank drew rank 0's noise, and whether the replicas were and stayed identical.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pinmem.data.sampling import build_train_loader
from pinmem.engine.config import Config, load_config
from pinmem.engine.distributed import DistContext, init_distributed, shutdown
from pinmem.models import memory_ops
from pinmem.training.trainer import Trainer

ITERATIONS = 3
METHODS = ("erm", "mldg", "pinmem")
Difference = tuple[float, str]


def config(method: str, data_root: str, out: Path, batch_per_domain: int, crop: int, stochastic: bool) -> Config:
    return load_config(None, [
        f"method={method}", "model.backbone=resnet18", f"data.root={data_root}", "data.targets=[]",
        f"train.crop_size={crop}", f"train.batch_per_domain={batch_per_domain}", "data.num_workers=0",
        "pinmem.init_images=4", "train.progress=false", "train.log_every=1", "data.epoch_length=16",
        f"train.iterations={ITERATIONS}", f"train.stochastic={str(stochastic).lower()}", "train.dtype=float64",
        f"train.out_dir={out}",
    ])


def batches(trainer: Trainer) -> Iterator[dict[str, Any]]:
    return iter(build_train_loader(trainer.sources, trainer.sampler_config))


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> Difference:
    """max over the tensors of max|a − b| / max|a| and the tensor's name; an integer tensor must be equal (else inf)."""
    worst, where = 0.0, ""
    for key, x in a.items():
        y = b[key]
        if x.is_floating_point():
            diff = float((x - y).abs().max() / x.abs().max().clamp_min(1e-300))
        else:
            diff = 0.0 if torch.equal(x, y) else float("inf")
        if diff > worst:
            worst, where = diff, key
    return worst, where


def momentum(trainer: Trainer) -> dict[str, torch.Tensor]:
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    return {names[id(p)]: s["momentum_buffer"] for p, s in trainer.optimizer.state.items() if "momentum_buffer" in s}


def replicas_identical(context: DistContext, model: torch.nn.Module) -> bool:
    """Every rank holds bit for bit rank 0's weights and buffers."""
    mine = torch.cat([t.detach().reshape(-1).double() for t in model.state_dict().values()])
    rank0 = mine.clone()
    dist.broadcast(rank0, src=0)
    differs = context.sum_(torch.tensor([float(not torch.equal(mine, rank0))]))
    return bool(differs.item() == 0)


def equality(data_root: str, out: Path, crop: int, methods: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rank = dist.get_rank()
    for method in methods:
        one = Trainer(config(method, data_root, out / f"{method}-one-{rank}", 2, crop, False), context=DistContext())
        two = Trainer(config(method, data_root, out / f"{method}-two", 1, crop, False))
        assert two.context.world_size == 2 and one.context.world_size == 1
        one.before_training()
        two.before_training()
        row: dict[str, Any] = {"init": largest_difference(one.model.state_dict(), two.model.state_dict()),
                               "state": [], "momentum": [], "replicas_identical": []}
        one_batches, two_batches = batches(one), batches(two)
        for iteration in range(ITERATIONS):
            two.model.load_state_dict(one.model.state_dict())
            two.optimizer.load_state_dict(copy.deepcopy(one.optimizer.state_dict()))  # not one's own buffers
            one.train_step(next(one_batches), iteration)
            two.train_step(next(two_batches), iteration)
            row["state"].append(largest_difference(one.model.state_dict(), two.model.state_dict()))
            row["momentum"].append(largest_difference(momentum(one), momentum(two)))
            row["replicas_identical"].append(replicas_identical(two.context, two.model))
        results[method] = row
    return results


def noise(data_root: str, out: Path, crop: int) -> dict[str, Any]:
    trainer = Trainer(config("pinmem", data_root, out / "noise", 1, crop, True))
    ctx = trainer.context
    drawn: dict[str, list[torch.Tensor]] = {"gumbel": [], "dropout": []}
    draw_gumbel = memory_ops.gumbel_noise

    def recording_gumbel(like: torch.Tensor) -> torch.Tensor:
        sample = draw_gumbel(like)
        drawn["gumbel"].append(sample.detach().clone())
        return sample

    def record_dropout(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        # Dropout2d zeroes whole channels; where the input channel is zero already the draw is not visible: -1
        visible = inputs[0].detach().flatten(2).abs().sum(2) > 0
        dropped = (output.detach().flatten(2).abs().sum(2) == 0).double()
        drawn["dropout"].append(torch.where(visible, dropped, -1.0))

    memory_ops.gumbel_noise = recording_gumbel
    hook = trainer.model.aux_head.dropout.register_forward_hook(record_dropout)
    try:
        result: dict[str, Any] = {"identical_before": replicas_identical(ctx, trainer.model)}
        trainer.before_training()
        trainer.train_step(next(batches(trainer)), 0)
    finally:
        memory_ops.gumbel_noise = draw_gumbel
        hook.remove()
    result["identical_after"] = replicas_identical(ctx, trainer.model)
    for kind, samples in drawn.items():
        mine = torch.cat([s.reshape(-1) for s in samples])
        rank0 = mine.clone()
        dist.broadcast(rank0, src=0)
        compared = (mine >= 0) & (rank0 >= 0) if kind == "dropout" else torch.ones_like(mine, dtype=torch.bool)
        same = ctx.sum_(torch.tensor([float(torch.equal(mine[compared], rank0[compared]))]))
        result[kind] = {"draws": len(samples), "compared": int(compared.sum()),
                        "same_on_all_ranks": bool(same.item() == ctx.world_size)}
    return result


def main(argv: list[str]) -> None:
    data_root, out, crop = argv[0], Path(argv[1]), int(argv[2])
    methods = tuple(argv[3].split(",")) if len(argv) > 3 else METHODS
    torch.set_num_threads(1)
    init_distributed("cpu")
    try:
        result = {"equality": equality(data_root, out, crop, methods), "noise": noise(data_root, out, crop)}
        if dist.get_rank() == 0:
            (out / "result.json").write_text(json.dumps(result, indent=1))
    finally:
        shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
