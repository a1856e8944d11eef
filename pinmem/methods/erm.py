"""ERM — the paper's "Baseline" (AGG): every source image in one batch, L_seg. IBN-Net is ERM with
``model.norm=ibn``; ISW builds on it (:mod:`pinmem.methods.isw`)."""

from __future__ import annotations

from torch import Tensor

from pinmem.methods.base import Batch, Method


class ERM(Method):
    name = "erm"

    def step(self, batch: Batch, iteration: int, lr: float) -> dict[str, Tensor]:
        x, y = self.inputs(batch, list(batch))
        out = self.model(x)
        loss = self.seg_loss(out, y)
        loss.backward()
        return {"seg": loss.detach()}
