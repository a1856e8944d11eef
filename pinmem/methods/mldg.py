"""MLDG (Li et al., 2018), the paper's meta-learning baseline (docs/method.md §5, last paragraph).

Each iteration splits the sources into meta-train and meta-test; L_tr = L_seg on meta-train,
θ' = θ − α∇L_tr, L_te = L_seg(θ') on meta-test, and one step on ∇(L_tr + L_te). First order (released):
∂θ'/∂θ = I, i.e. the sum of the two gradients; second order: the gradient flows back through θ'.
"""

from __future__ import annotations

from torch import Tensor

from pinmem.methods.base import (
    Batch,
    Method,
    add_first_order_gradients,
    first_order_weights,
    forward_with,
    gradients,
    inner_lr,
    inner_step,
)


class MLDG(Method):
    name = "mldg"

    def step(self, batch: Batch, iteration: int, lr: float) -> dict[str, Tensor]:
        first_order = self.config.meta.first_order
        (x_tr, y_tr), (x_te, y_te) = self.meta_split(batch, iteration)
        params = self.trainable()

        loss_tr = self.seg_loss(self.model(x_tr), y_tr)
        grads_tr = gradients(loss_tr, params, create_graph=not first_order)
        alpha, averaged = inner_lr(self.config, iteration, lr), self.context.average_tensors(grads_tr)
        # first order: θ' as leaves, the meta-test gradient lands in θ'.grad (∂θ'/∂θ = I)
        fast = first_order_weights(params, averaged, alpha) if first_order else inner_step(params, averaged, alpha,
                                                                                            first_order=False)
        loss_te = self.seg_loss(forward_with(self.model, fast, x_te, isolate_buffers=self.config.meta.isolate_bn_stats),
                                y_te)

        if first_order:
            loss_te.backward()
            add_first_order_gradients(params, fast, grads_tr)
        else:
            (loss_tr + loss_te).backward()
        return {"meta_train": loss_tr.detach(), "meta_test": loss_te.detach()}
