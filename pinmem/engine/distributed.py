"""Data-parallel training without DDP's wrapper, so that the second-order meta-gradient works across ranks.

PyTorch's ``DistributedDataParallel`` does not support double backward, and ``nn.SyncBatchNorm`` neither runs
on CPU nor supports it. pinmem therefore averages gradients itself (:meth:`DistContext.average_gradients`)
and synchronises batch norm with :class:`SyncBatchNorm2d`, whose statistics are formed with differentiable
all-reduces. Everything a rank computes from the whole global batch — BN statistics, the memory write's
per-class sums, the valid-pixel counts that normalise the cross-entropies, the inner gradient of the
meta-learning step — goes through :meth:`DistContext.all_reduce`, so an iteration on N ranks with per-domain batch b
is the iteration of one rank with batch N·b, to rounding (docs/training.md, "Distributed": how that is tested, and why
free-running trajectories drift apart anyway where BN is degenerate). Each rank draws its own noise
(:meth:`DistContext.seed_noise`).

Launch with ``torchrun --nproc_per_node N -m pinmem train ...``; a plain ``pinmem train`` is one rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from pinmem.runtime import resolve_device


@dataclass
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: Tensor) -> Tensor:
        """Sum over ranks, differentiable (its backward sums the gradients over ranks); identity on one rank."""
        if not self.distributed:
            return tensor
        import warnings

        import torch.distributed.nn.functional as dist_fn

        with warnings.catch_warnings():  # deprecated in favour of a private module; still the public API
            warnings.simplefilter("ignore", FutureWarning)
            return dist_fn.all_reduce(tensor, op=dist.ReduceOp.SUM)

    @torch.no_grad()
    def sum_(self, tensor: Tensor) -> Tensor:
        """In-place sum over ranks, not differentiable (counts, metrics)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def mean_count(self, count: Tensor) -> Tensor:
        """The global count (at least 1, as one rank's mean clamps its count) divided by the world size: a rank
        normalising its loss sum by this makes the average of the ranks' gradients equal the gradient of the
        global mean. In float64: a float32 count is inexact above 2²⁴ pixels and divided by a world size that is not
        a power of 2."""
        if not self.distributed:
            return count
        return self.sum_(count.detach().double().clone()).clamp_min(1) / self.world_size

    def seed_noise(self, seed: int, iteration: int) -> None:
        """With several ranks, seed this rank's global torch RNG (Gumbel noise, dropout, drop-path) from
        ``(seed, rank, iteration)``, so that the ranks draw different noise for their different images, and a
        resumed run draws what the uninterrupted one did (the checkpoint holds rank 0's RNG state only). The
        weights do not depend on it: they are initialised before and broadcast from rank 0. One rank: nothing
        changes (its noise continues the stream seeded by ``train.seed``)."""
        if self.distributed:
            torch.manual_seed(noise_seed(seed, self.rank, iteration))

    @torch.no_grad()
    def average_gradients(self, parameters: list[nn.Parameter]) -> None:
        """Average ``.grad`` over ranks (one flat all-reduce)."""
        if not self.distributed:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def average_tensors(self, tensors: list[Tensor]) -> list[Tensor]:
        """Differentiable average over ranks of a list of tensors (the meta-learning inner gradient)."""
        if not self.distributed:
            return tensors
        return [None if t is None else self.all_reduce(t) / self.world_size for t in tensors]

    @torch.no_grad()
    def broadcast_module(self, module: nn.Module) -> None:
        """Make every rank start from rank 0's parameters and buffers."""
        if self.distributed:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)


#: keeps the noise seeds apart from the data pipeline's seeds derived from the same ``train.seed``
_NOISE_TAG = 0x6E6F697365  # "noise"


def noise_seed(seed: int, rank: int, iteration: int) -> int:
    """The 64-bit seed of rank ``rank``'s noise at ``iteration`` (:meth:`DistContext.seed_noise`)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(_NOISE_TAG, rank, iteration))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics are taken over the global batch of all ranks.

    Mean and variance come from all-reduced sums of x and x², so the layer is differentiable to any order
    (the second-order meta-gradient goes through it) and runs on CPU (gloo) as on GPU. In eval mode, or on
    one rank, it is a plain :class:`~torch.nn.BatchNorm2d`.
    """

    def __init__(self, num_features: int, context: DistContext, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.context = context

    def forward(self, x: Tensor) -> Tensor:
        batch_statistics = self.training or not self.track_running_stats  # as nn.BatchNorm2d decides
        if not (batch_statistics and self.context.distributed):
            return super().forward(x)
        # two passes (global mean, then the global sum of squared deviations): E[x²] − E[x]² in one pass loses
        # most of float32's precision on post-ReLU activations, whose mean is large against their spread
        dims = (0, 2, 3)
        count = x.numel() / x.shape[1] * self.context.world_size
        mean = self.context.all_reduce(x.sum(dim=dims)) / count
        centred = x - mean[None, :, None, None]
        var = self.context.all_reduce((centred * centred).sum(dim=dims)) / count
        if self.training and self.track_running_stats and self.running_mean is not None \
                and self.running_var is not None and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # momentum None: the cumulative average, as in nn.BatchNorm2d
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / max(count - 1.0, 1.0)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased.detach())
        y = centred * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def convert_sync_batchnorm(module: nn.Module, context: DistContext) -> nn.Module:
    """Replace every ``BatchNorm2d`` by :class:`SyncBatchNorm2d` (same parameters, buffers and names)."""
    if not context.distributed:
        return module
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm2d(child.num_features, context, eps=child.eps, momentum=child.momentum,
                                   affine=child.affine, track_running_stats=child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            reference = child.running_mean if child.running_mean is not None else next(child.parameters())
            sync.to(device=reference.device, dtype=reference.dtype)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child, context)
    return module


def shutdown() -> None:
    """Leave the process group (at the end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
