"""Pin the Memory's meta-learning (Algorithm 1 of the paper; docs/method.md §5).

:meth:`PinTheMemory.step` is Algorithm 1's loop body; its comments carry the line numbers of the algorithm as
listed here (the paper's text, numbered):

     1  initialise θ_{E,U,D,G} and M, t = 0
     2  while t < T:
     3      randomly split S into S_mtr and S_mte
     4      meta-training:
     5          sample a batch X_mtr from S_mtr
     6          compute L_read with (X_mtr, M, θ_{E,D})
     7          M̂ ← update(M, X_mtr; θ_{E,U})
     8          compute L_update with (M̂, θ_G)
     9          θ'_{E,U,D} and θ*_G from θ_{E,U,D,G} (eq. 9)
    10      meta-testing:
    11          M' ← update(M, X_mtr; copy(θ'_E), θ'_U)
    12          sample a batch X_mte from S_mte
    13          compute L_read with (X_mte, M', θ'_{E,D})
    14          θ*_{E,U,D} from θ'_{E,U,D} (eq. 11)
    15          M* ← update(M, X_mtr; copy(θ*_{E,U}))
    16      θ ← θ*, M ← M*, t ← t + 1

Each equation is one named function below: L_read (:func:`read_loss`), L_update (:func:`update_loss`), θ'
(:func:`~pinmem.methods.base.inner_step`, eq. 9; for the first order
:func:`~pinmem.methods.base.first_order_weights`, the same values as leaves), M'
(:meth:`PinTheMemory.memory_for_meta_test`) and the memory commit M* (:meth:`PinTheMemory.after_step`).
docs/performance.md: where a step's time goes.

Outer gradient. ``meta.first_order=true`` (default; the released code): ∂θ'/∂θ = I, the meta-train and
meta-test gradients are summed and one SGD step is taken. ``false``: the paper's eq. (11) — E, U and D step
along ∇_θ L_read(M', X_mte; θ'(θ)), the gradient flowing back through θ' (and through θ'_U into M'); G, which
the meta-test loss does not use, steps along its meta-train gradient (Algorithm 1, line 9: θ*_G).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pinmem.data.classes import class_set_from
from pinmem.engine.config import Config
from pinmem.engine.distributed import DistContext
from pinmem.methods.base import (
    Batch,
    DataPass,
    Method,
    Params,
    add_first_order_gradients,
    call_with,
    copied_buffers,
    eval_mode,
    first_order_weights,
    forward_with,
    gradients,
    inner_lr,
    inner_step,
)
from pinmem.models.base import SegmentationModel, SegmentationOutput
from pinmem.models.losses import Normalizer, cohesion_loss, divergence_loss, segmentation_loss
from pinmem.runtime import autocast

log = logging.getLogger("pinmem")


def read_loss(out: SegmentationOutput, labels: Tensor, lambda_coh: float, normalizer: Normalizer | None,
              temperature: float = 1.0) -> Tensor:
    """L_read = L_seg + λ1·L_coh (docs/method.md §4): segmentation (with the auxiliary head) plus feature cohesion
    at the read's τ (``temperature``)."""
    seg = segmentation_loss(out.logits, labels, out.aux_logits, normalizer=normalizer)
    return seg + lambda_coh * cohesion_loss(out.cosine, labels, temperature, normalizer=normalizer)


def update_loss(memory_hat: Tensor, classifier: torch.nn.Module, lambda_div: float) -> Tensor:
    """L_update = λ2·L_div(M̂; θ_G): memory divergence of the written memory M̂."""
    return lambda_div * divergence_loss(memory_hat, classifier)


@torch.no_grad()
def memory_statistics(out: SegmentationOutput, memory: Tensor, temperature: float) -> dict[str, Tensor]:
    """The step's diagnostics (:attr:`~pinmem.methods.base.Method.diagnostics`), logged beside the losses
    (docs/results.md): ``read_entropy``, the mean entropy (nats; log N = uniform) of
    the noise-free read softmax(s/τ) on the meta-train batch, and ``slot_cosine``, the mean cosine similarity
    between distinct memory slots."""
    assert out.cosine is not None
    weights = torch.softmax(out.cosine.float() / temperature, dim=1)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(1).mean()
    m = torch.nn.functional.normalize(memory.float(), dim=1)
    n = len(m)
    similarity = (m @ m.t()).sum() - torch.diagonal(m @ m.t()).sum()
    return {"read_entropy": entropy, "slot_cosine": similarity / max(n * (n - 1), 1)}


class PinTheMemory(Method):
    name = "pinmem"

    def __init__(self, model: SegmentationModel, config: Config, context: DistContext) -> None:
        super().__init__(model, config, context)
        if model.memory is None:
            raise ValueError("method pinmem needs a model built with memory=True")
        self._commit_batch: tuple[Tensor, Tensor] | None = None
        self.largest_source = 0

    # ------------------------------------------------------------------ the memory's life outside the step
    def attach_data(self, datasets: Sequence[Any], iterations_per_epoch: int) -> None:
        self.largest_source = max((len(dataset) for dataset in datasets), default=0)

    def before_training(self, batches: DataPass) -> None:
        """docs/method.md §3: M from the class means of the L2-normalised F over the sources' training data (eval
        mode, no grad): one pass over the largest source's training set, at most ``pinmem.init_images`` images per
        domain over all ranks; per-class sums all-reduced before the mean."""
        cfg, ctx, memory = self.config, self.context, self.model.memory
        per_iteration = cfg.train.batch_per_domain * ctx.world_size
        largest = self.largest_source
        iterations = max(1, math.ceil(min(cfg.pinmem.init_images, largest) / per_iteration))
        with eval_mode(self.model), torch.no_grad():
            for batch in batches(iterations, cfg.train.seed + 1, "memory initialisation"):
                for part in batch.values():
                    with autocast(cfg.train.amp, ctx.device):
                        feature = self.model.encode(part["image"])
                    memory.init_accumulate(feature, part["label"])  # float32, or float64 when training in float64
            counts = memory.init_finalize(reduce=ctx.sum_ if ctx.distributed else None)
        seen = int((counts > 0).sum())
        log.info("memory initialised from %d images per domain (one pass over the largest source's %d training "
                 "images, pinmem.init_images=%d at most): %d of %d classes seen",
                 iterations * per_iteration, largest, cfg.pinmem.init_images, seen, len(counts))

    def nonfinite_state(self) -> Tensor:
        """The memory slots (rows of M) holding NaN or infinity."""
        return ~torch.isfinite(self.model.memory.slots).all(dim=1)

    def describe_state(self, bad: Sequence[int]) -> str:
        model = self.config.model
        names = class_set_from(model.classes, model.palette, len(self.model.memory.slots)).names
        return f"memory slot(s) {slot_names(bad, names)} of Pin the Memory"

    # ------------------------------------------------------------------ Algorithm 1
    def step(self, batch: Batch, iteration: int, lr: float) -> dict[str, Tensor]:
        if not self.config.pinmem.meta_learning:
            return self.step_without_meta_learning(batch)
        cfg, model, memory = self.config, self.model, self.model.memory
        first_order = cfg.meta.first_order
        lam_coh, lam_div = cfg.pinmem.lambda_coh, cfg.pinmem.lambda_div
        theta = self.trainable()
        M = memory.slots

        # 3: randomly split S into S_mtr and S_mte; 5 and 12: their batches X_mtr and X_mte
        (x_mtr, y_mtr), (x_mte, y_mte) = self.meta_split(batch, iteration)
        # 6: L_read with (X_mtr, M, θ_{E,D})   — the read uses M detached, because …
        # 7: M̂ ← update(M, X_mtr; θ_{E,U})     — … the same forward writes M̂
        out_mtr = model(x_mtr, labels=y_mtr)
        l_read_mtr = read_loss(out_mtr, y_mtr, lam_coh, self.normalizer, memory.temperature)
        # 8: L_update with (M̂, θ_G)
        l_update = update_loss(out_mtr.memory_hat, memory.classifier, lam_div)
        # 9: θ' = θ − α·∇_θ(L_read + L_update)   (eq. 9; θ*_G is G's step along its meta-train gradient, in 14)
        grads_mtr = gradients(l_read_mtr + l_update, theta, create_graph=not first_order)
        alpha, averaged = inner_lr(cfg, iteration, lr), self.context.average_tensors(grads_mtr)
        theta_prime = (first_order_weights(theta, averaged, alpha) if first_order  # leaves: ∂θ'/∂θ = I
                       else inner_step(theta, averaged, alpha, first_order=False))
        # 11: M' ← update(M, X_mtr; copy(θ'_E), θ'_U)
        M_prime = self.memory_for_meta_test(theta_prime, x_mtr, y_mtr, M)
        # 13: L_read with (X_mte, M', θ'_{E,D})
        out_mte = forward_with(model, theta_prime, x_mte, memory=M_prime, isolate_buffers=cfg.meta.isolate_bn_stats)
        l_read_mte = read_loss(out_mte, y_mte, lam_coh, self.normalizer, memory.temperature)
        # 14: θ* from θ' (eq. 11) — gradients into .grad; the trainer averages them over ranks and steps (16)
        self.outer_gradient(theta, theta_prime, grads_mtr, l_read_mte, first_order)
        # 15: M* ← update(M, X_mtr; copy(θ*_{E,U})) is after_step, once the trainer has made θ*
        self._commit_batch = (x_mtr.detach(), y_mtr.detach())
        self.diagnostics = memory_statistics(out_mtr, M, memory.temperature)
        return {"read_mtr": l_read_mtr.detach(), "update": l_update.detach(), "read_mte": l_read_mte.detach()}

    def step_without_meta_learning(self, batch: Batch) -> dict[str, Tensor]:
        """The ablation ``pinmem.meta_learning=false`` (the released ``train_memory_agg``): all sources in one
        batch X, L_read(X, M) + L_update(M̂) on θ, one SGD step, then M ← update(M, X; θ*) as in line 15."""
        cfg = self.config
        x, y = self.inputs(batch, list(batch))
        out = self.model(x, labels=y)
        l_read = read_loss(out, y, cfg.pinmem.lambda_coh, self.normalizer, self.model.memory.temperature)
        l_update = update_loss(out.memory_hat, self.model.memory.classifier, cfg.pinmem.lambda_div)
        (l_read + l_update).backward()
        self._commit_batch = (x.detach(), y.detach())
        self.diagnostics = memory_statistics(out, self.model.memory.slots, self.model.memory.temperature)
        return {"read": l_read.detach(), "update": l_update.detach()}

    def memory_for_meta_test(self, theta_prime: Params, x_mtr: Tensor, y_mtr: Tensor, M: Tensor) -> Tensor:
        """M' = update(M, X_mtr; copy(θ'_E), θ'_U) (Algorithm 1, line 11).

        F comes from a frozen copy of θ' (no gradient, BN running statistics untouched); only the update
        network U runs with the live θ'_U, so the only gradient path from the meta-test loss into M' is U.
        """
        return self.write_with(theta_prime, self.frozen_feature(theta_prime, x_mtr), y_mtr, M)

    @torch.no_grad()
    def frozen_feature(self, theta_prime: Params, x: Tensor) -> Tensor:
        """F of ``x`` under copy(θ'): detached parameters, BN statistics not updated."""
        frozen = {name: p.detach() for name, p in theta_prime.items()}
        frozen |= copied_buffers(self.model)
        return call_with(self.model, frozen, "encode", x)

    def write_with(self, theta_prime: Params, feature: Tensor, labels: Tensor, M: Tensor) -> Tensor:
        """update(M, F; θ'_U): the memory write with the live update-network parameters of θ'."""
        memory = self.model.memory
        live_u = {name.removeprefix("memory."): p for name, p in theta_prime.items()
                  if name.startswith("memory.update_net.")}
        live_u |= {f"update_net.{name}": b for name, b in copied_buffers(memory.update_net).items()}
        return call_with(memory, live_u, "write", feature, labels, memory=M)

    def outer_gradient(self, theta: Params, theta_prime: Params, grads_mtr: list[Tensor], loss_mte: Tensor,
                       first_order: bool) -> None:
        """Line 14. First order: ∇L_mtr + ∇_θ' L_mte (θ' = θ − α·const: the leaves of
        :func:`~pinmem.methods.base.first_order_weights`). Second order (eq. 11): ∇_θ L_mte(θ'(θ)) for E, U, D and
        ∇_G L_mtr for G, which L_mte does not use."""
        loss_mte.backward()
        if first_order:
            add_first_order_gradients(theta, theta_prime, grads_mtr)
            return
        for (name, p), g in zip(theta.items(), grads_mtr, strict=True):
            if name.startswith("memory.classifier."):
                p.grad = g.detach().clone()

    @torch.no_grad()
    def after_step(self, iteration: int) -> None:
        """Lines 15–16: M ← M* = update(M, X_mtr; copy(θ*_{E,U})), no gradient, eval-mode BN."""
        if self._commit_batch is None:
            return
        x_mtr, y_mtr = self._commit_batch
        with eval_mode(self.model):
            M_star = self.model.memory.write(self.model.encode(x_mtr), y_mtr)
        self.model.memory.commit(M_star)
        self._commit_batch = None


def slot_names(slots: Sequence[int], names: Sequence[str]) -> str:
    """``"3 (wall), 7 (traffic sign)"``: memory slots with the names of their classes (the run's class set)."""
    return ", ".join(f"{s} ({names[s]})" for s in slots)
