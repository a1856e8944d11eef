"""What every training method shares: one interface and the small pieces the meta-learning loops reuse.

A method's :meth:`Method.step` computes one iteration's gradients into the parameters' ``.grad`` (this rank's
share; the trainer averages them over ranks and takes the optimiser step) and returns its loss terms (what the
gradients came from; quantities that are logged but part of no loss are :attr:`Method.diagnostics`);
:meth:`Method.after_step` runs after the optimiser step (Pin the Memory commits its memory there). A method owns
whatever it trains besides the parameters: :meth:`Method.before_training` prepares it (Pin the Memory initialises
its memory from class means) and :meth:`Method.nonfinite_state` lets the trainer check it (the memory slots).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pinmem.engine.config import Config
from pinmem.engine.distributed import DistContext
from pinmem.models.base import SegmentationModel, SegmentationOutput
from pinmem.models.losses import segmentation_loss

#: one iteration's data: domain -> {"image": B×3×H×W, "label": B×H×W, "index": B}
Batch = Mapping[str, Mapping[str, Tensor]]
Params = dict[str, Tensor]
#: what the trainer lends :meth:`Method.before_training`: ``batches(iterations, seed, what)`` yields
#: ``iterations`` batches of the sources' training data (this rank's share, drawn with ``seed``) on the training
#: device; a bad sample or a stop request ends the pass with an error that names ``what``
DataPass = Callable[[int, int, str], Iterable[Batch]]


class Method(ABC):
    """A training method (ERM, ISW, MLDG, Pin the Memory) behind one interface."""

    name: ClassVar[str]

    def __init__(self, model: SegmentationModel, config: Config, context: DistContext) -> None:
        self.model, self.config, self.context = model, config, context
        self.normalizer = context.mean_count if context.distributed else None
        self.dtype = getattr(torch, config.train.dtype)
        #: the last step's diagnostics (device tensors, unread): logged beside the losses, part of none of them
        self.diagnostics: dict[str, Tensor] = {}

    @abstractmethod
    def step(self, batch: Batch, iteration: int, lr: float) -> dict[str, Tensor]:
        """Gradients of iteration ``iteration`` (0-based, learning rate ``lr``) into ``.grad``; loss terms."""

    def attach_data(self, datasets: Sequence[Any], iterations_per_epoch: int) -> None:  # noqa: B027 (a hook)
        """Called once by the trainer with the source training sets and the iterations per epoch, for a method
        that reads data beyond its batches (ISW's covariance stage); most methods ignore it."""

    def before_training(self, batches: DataPass) -> None:  # noqa: B027 (a hook; most methods need none)
        """Called once before the first iteration of a run that starts from scratch (not on resume: the checkpoint
        holds what it prepared), with the training data to pass over (Pin the Memory's memory initialisation)."""

    def nonfinite_state(self) -> Tensor | None:
        """What the method trains besides the parameters, checked by the trainer with each step's finiteness check
        and before each checkpoint: a bool vector on the training device, True for each unit of that state holding
        NaN or infinity, built without a host-device sync; None for a method without such state."""
        return None

    def describe_state(self, bad: Sequence[int]) -> str:
        """The units ``bad`` of :meth:`nonfinite_state`, in words, for the error that stops training."""
        return f"state entries {', '.join(map(str, bad))} of method {self.name}"

    def before_step(self, iteration: int) -> None:  # noqa: B027 (a hook; most methods need none)
        """Called before :meth:`step` (ISW's covariance stage starts here)."""

    def after_step(self, iteration: int) -> None:  # noqa: B027
        """Called after the optimiser step (Pin the Memory's memory commit)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        if state:
            raise ValueError(f"{self.name} keeps no state, got {sorted(state)}")

    # ------------------------------------------------------------------ shared pieces
    def inputs(self, batch: Batch, domains: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Images and labels of ``domains`` concatenated, on the training device."""
        device = self.context.device
        x = torch.cat([batch[d]["image"] for d in domains]).to(device, self.dtype, non_blocking=True)
        y = torch.cat([batch[d]["label"] for d in domains]).to(device, non_blocking=True)
        return x, y

    def meta_split(self, batch: Batch, iteration: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """(X_mtr, Y_mtr), (X_mte, Y_mte) for this iteration: the domains split by :func:`split_domains`; with a
        single source (G → C, B, M) a random half of its batch is meta-train and the other half meta-test (the
        paper does not say how it splits one source; this is pinmem's choice)."""
        domains = list(batch)
        seed = self.config.train.seed
        if len(domains) >= 2:
            meta_train, meta_test = split_domains(domains, seed, iteration)
            return self.inputs(batch, meta_train), self.inputs(batch, meta_test)
        x, y = self.inputs(batch, domains)
        if len(x) < 2:
            raise ValueError("a single source needs train.batch_per_domain >= 2 to split it into meta-train/test")
        order = torch.from_numpy(np.random.default_rng([seed, iteration, 0x5EED]).permutation(len(x)))
        half = len(x) // 2
        return (x[order[:half]], y[order[:half]]), (x[order[half:]], y[order[half:]])

    def seg_loss(self, out: SegmentationOutput, labels: Tensor) -> Tensor:
        """L_seg = CE(P, Y) + 0.4·CE(P_aux, Y↓), normalised over the global batch."""
        return segmentation_loss(out.logits, labels, out.aux_logits, normalizer=self.normalizer)

    def trainable(self) -> Params:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}


def split_domains(domains: Sequence[str], seed: int, iteration: int) -> tuple[list[str], list[str]]:
    """Algorithm 1, line 3: a random permutation of the sources, k ~ U{1, …, |S|−1}; the first k domains are
    meta-train, the rest meta-test. A pure function of (seed, iteration), so every rank draws the same split."""
    if len(domains) < 2:
        raise ValueError(f"meta-learning needs at least two source domains, got {list(domains)}")
    rng = np.random.default_rng([seed, iteration, 0x5EED])
    order = [domains[i] for i in rng.permutation(len(domains))]
    k = int(rng.integers(1, len(domains)))
    return order[:k], order[k:]


def inner_lr(config: Config, iteration: int, lr: float) -> float:
    """α: ``meta.first_inner_lr`` at the very first step, then lr·``meta.inner_lr_ratio`` (released: lr/4)."""
    return config.meta.first_inner_lr if iteration == 0 else lr * config.meta.inner_lr_ratio


def gradients(loss: Tensor, params: Params, create_graph: bool) -> list[Tensor]:
    """∇ loss for every parameter (zeros where the loss does not depend on it)."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph,
                                retain_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params.values(), strict=True)]


def inner_step(params: Params, grads: Sequence[Tensor], alpha: float, first_order: bool) -> Params:
    """θ' = θ − α·g. First order treats g as a constant (∂θ'/∂θ = I); second order keeps its graph.

    Computed as θ + (−α)·g, which rounds exactly as θ − α·g (negation is exact), so that the backward of the
    second-order update multiplies the incoming gradient by −α once instead of negating it and then multiplying
    it by α (the same numbers, one pass over every parameter less)."""
    return {name: p + torch.mul(g.detach() if first_order else g, -alpha)
            for (name, p), g in zip(params.items(), grads, strict=True)}


def first_order_weights(params: Params, grads: Sequence[Tensor], alpha: float) -> Params:
    """θ' = θ − α·g for the first-order update, as new leaf tensors (no graph back to θ).

    The values are bitwise those of ``inner_step(params, grads, alpha, first_order=True)``. Because ∂θ'/∂θ = I,
    the meta-test gradient with respect to θ' *is* its gradient with respect to θ: the meta-test backward
    leaves it in ``θ'.grad`` and :func:`add_first_order_gradients` adds the meta-train gradient to it in place.
    Against a θ' that hangs off θ this allocates one tensor per parameter instead of three (α·g, θ' and the
    out-of-place sum of the two gradients); on a CPU a fresh large tensor costs page faults."""
    with torch.no_grad():
        return {name: torch.mul(g, -alpha).add_(p).requires_grad_(p.requires_grad)
                for (name, p), g in zip(params.items(), grads, strict=True)}


def add_first_order_gradients(params: Params, fast: Params, grads: Sequence[Tensor]) -> None:
    """``p.grad`` ← ``p.grad`` + ∇_θ' L_mte + g for every parameter, after the meta-test loss was backpropagated
    into the leaves ``fast`` of :func:`first_order_weights`. The same sums, in the same order (the meta-test
    gradient first), as a backward through ``inner_step(first_order=True)``'s θ' into ``p.grad`` followed by
    ``p.grad + g``; only the parameter-sized temporaries are gone."""
    for (name, p), g in zip(params.items(), grads, strict=True):
        g_mte, g = fast[name].grad, g.detach()
        if p.grad is None:
            p.grad = g.clone() if g_mte is None else g_mte.add_(g)  # θ'.grad belongs to the leaf alone
        else:  # a gradient from before the step: the backward would have added the meta-test one to it first
            p.grad = (p.grad if g_mte is None else p.grad + g_mte) + g


def forward_with(model: nn.Module, params: Params, *args: Any, isolate_buffers: bool = False, **kwargs: Any) -> Any:
    """``model(*args, **kwargs)`` with ``params`` in place of its parameters.

    ``isolate_buffers=False``: the pass uses and updates the module's own buffers (BN running statistics).
    ``True``: it runs on copies of them, so whatever a train-mode pass writes into its BN running statistics is
    discarded — the released code's θ′, which lives in a separate network copy with buffers of its own
    (docs/method.md, "BN statistics of the meta-test").
    """
    tensors = dict(params)
    if isolate_buffers:
        tensors |= copied_buffers(model)
    return torch.func.functional_call(model, tensors, args, kwargs, strict=False)


def copied_buffers(module: nn.Module) -> Params:
    """A copy of every buffer of ``module`` (BN running statistics, the memory), keyed by name."""
    return {name: b.clone() for name, b in module.named_buffers()}


class _BoundMethod(nn.Module):
    """``forward`` = ``module.<method>``, so that :func:`torch.func.functional_call` can run any method."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, self.method)(*args, **kwargs)


def call_with(module: nn.Module, tensors: Params, method: str, *args: Any, **kwargs: Any) -> Any:
    """``module.<method>(*args, **kwargs)`` with some of its parameters/buffers replaced by ``tensors`` (keyed
    by their names in ``module``) for the call: :func:`torch.func.functional_call` on a small module whose
    ``forward`` is that method, so that methods other than ``forward`` can run with them too."""
    bound = _BoundMethod(module, method)
    renamed = {f"module.{name}": t for name, t in tensors.items()}
    return torch.func.functional_call(bound, renamed, args, kwargs, tie_weights=False, strict=False)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Temporarily in eval mode (BN running statistics, no dropout)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
