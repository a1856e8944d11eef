"""The Pin the Memory module (docs/method.md §3): a class memory M (N slots × C channels), read every forward, written
with a masked average of the update network's features.

Design for the meta-learning loop (docs/method.md §5):

- M is the registered buffer ``slots`` (saved and restored by ``state_dict``), not a parameter.
- Every read/write accepts an explicit ``memory`` tensor overriding the buffer (the loop reads with M' on θ').
- :meth:`PinMemory.write` *returns* M̂ as a differentiable tensor and never mutates the buffer;
  :meth:`PinMemory.commit` copies a value into it. When a write happens in the same pass, the memory used for
  the read is detached (read step 6), so the only gradient path into M̂ is through the update network U.
- The per-class sums are exposed (:func:`pinmem.models.memory_ops.class_sums`) and pass through an optional
  ``reduce`` hook (e.g. an all-reduce over ranks) before the mean is formed.
- Works under ``torch.func.functional_call`` (no state is written during forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinmem.errors import PinmemError
from pinmem.models.layers import conv_bn_relu, init_new_layers
from pinmem.models.memory_ops import at_least_float32, class_sums, read_weights, write_memory

Reduce = Callable[[Tensor], Tensor]
#: the released code's initialisation of the memory module's BN biases and of G's weight (std)
RELEASED_BN_BIAS = 1e-4
RELEASED_CLASSIFIER_STD = 1e-4


@dataclass
class MemoryRead:
    """Result of a read: ``fused`` R (B×C×h×w), ``cosine`` s (B×N×h×w, no noise, no temperature), ``weights``
    W (B×N×h×w, sums to 1 over N)."""

    fused: Tensor
    cosine: Tensor
    weights: Tensor


@dataclass
class MemoryOutput(MemoryRead):
    """A read, plus ``memory_hat`` M̂ (N×C) when labels were given (a write happened)."""

    memory_hat: Tensor | None = None


class UpdateNetwork(nn.Module):
    """U (docs/method.md §3 write step 1): Z = normalize(ReLU(F + BN(Conv1×1_{C→C, no bias}(F)))) per pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, feature: Tensor) -> Tensor:
        return F.normalize(torch.relu(feature + self.bn(self.conv(feature))), dim=1)


class PinMemory(nn.Module):
    """Memory module: buffer ``slots`` (M), ``fusion`` (Conv1×1 2C→C, BN, ReLU), ``update_net`` (U) and
    ``classifier`` (G = Linear(C→N), applied to each slot by the divergence loss).

    Args:
        num_slots: N, one slot per class.
        channels: C, the channels of the feature F.
        momentum: m of the write; weights the *old* memory (0.8).
        temperature: τ of the read softmax (1).
        stochastic: Gumbel noise in the read while training (the paper); False gives a plain softmax in
            training too (deterministic runs and equivalence tests).
        gumbel_eval: Gumbel noise in the read in eval mode too (the released code's behaviour; default off).
        reduce: optional hook applied to the per-class ``sums`` and ``counts`` of a write before the mean is
            formed, e.g. a differentiable all-reduce over ranks
            (``torch.distributed.nn.functional.all_reduce``).
    """

    slots: Tensor

    def __init__(
        self,
        num_slots: int = 19,
        channels: int = 256,
        momentum: float = 0.8,
        temperature: float = 1.0,
        stochastic: bool = True,
        gumbel_eval: bool = False,
        reduce: Reduce | None = None,
    ) -> None:
        super().__init__()
        self.num_slots, self.channels = num_slots, channels
        self.momentum, self.temperature = momentum, temperature
        self.stochastic, self.gumbel_eval = stochastic, gumbel_eval
        self.reduce = reduce
        self.register_buffer("slots", torch.zeros(num_slots, channels))
        self.fusion = conv_bn_relu(2 * channels, channels, 1)
        self.update_net = UpdateNetwork(channels)
        self.classifier = nn.Linear(channels, num_slots)
        self.reset_parameters()
        self._init_sums: Tensor | None = None
        self._init_counts: Tensor | None = None

    def reset_parameters(self) -> None:
        """The released initialisation of the memory's own layers (docs/method.md, "Initialisation"):
        convolutions Kaiming-normal (fan_in, ReLU); BatchNorm weight 1, **bias 1e-4**; G (``classifier``)
        weight ~ N(0, 1e-4²), bias 0. A Kaiming-initialised G makes the first gradient of λ2·L_div into F
        about 900× the released one."""
        init_new_layers(self)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.bias, RELEASED_BN_BIAS)
        nn.init.normal_(self.classifier.weight, std=RELEASED_CLASSIFIER_STD)
        nn.init.zeros_(self.classifier.bias)

    # ------------------------------------------------------------------ read / write
    def read(self, feature: Tensor, memory: Tensor | None = None) -> MemoryRead:
        """Read (docs/method.md §3): q = F/‖F‖, s = q·Mᵀ, W = softmax((s+g)/τ), r = W·M, R = ReLU(BN(Conv([q; r])))."""
        mem = self.slots if memory is None else memory
        b, c, h, w = feature.shape
        q = F.normalize(feature, dim=1)
        mem = mem.to(q.dtype)
        cosine = torch.matmul(mem, q.reshape(b, c, h * w))  # (N×C)·(B×C×P) -> B×N×P
        gumbel = self.stochastic if self.training else self.gumbel_eval
        weights = read_weights(cosine, self.temperature, gumbel)
        read = torch.matmul(mem.t(), weights.to(mem.dtype))  # (C×N)·(B×N×P) -> B×C×P
        fused = self.fusion(torch.cat([q, read.reshape(b, c, h, w)], dim=1))
        return MemoryRead(fused, cosine.reshape(b, -1, h, w), weights.reshape(b, -1, h, w))

    def update_sums(self, feature: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """U's per-class sums and counts for a batch (:func:`~pinmem.models.memory_ops.class_sums` of U(F)), after
        the ``reduce`` hook."""
        sums, counts = class_sums(self.update_net(feature), labels, self.num_slots)
        if self.reduce is not None:
            sums, counts = self.reduce(sums), self.reduce(counts)
        return sums, counts

    def write(self, feature: Tensor, labels: Tensor, memory: Tensor | None = None) -> Tensor:
        """M̂ = update(M, F, Y) (docs/method.md §3 write), differentiable through U and F; the buffer is unchanged."""
        mem = self.slots if memory is None else memory
        sums, counts = self.update_sums(feature, labels)
        return write_memory(mem, sums, counts, self.momentum)

    def forward(
        self, feature: Tensor, labels: Tensor | None = None, memory: Tensor | None = None
    ) -> MemoryOutput:
        """Read, and write when ``labels`` are given (then the read uses the detached memory)."""
        mem = self.slots if memory is None else memory
        memory_hat = None
        if labels is not None:
            memory_hat = self.write(feature, labels, mem)
            mem = mem.detach()
        r = self.read(feature, mem)
        return MemoryOutput(r.fused, r.cosine, r.weights, memory_hat)

    @torch.no_grad()
    def commit(self, new_memory: Tensor) -> None:
        """Copy ``new_memory`` (N×C) into the buffer (the loop's final step: docs/method.md §5, Algorithm 1 line 16)."""
        if new_memory.shape != self.slots.shape:
            raise ValueError(f"memory of shape {tuple(new_memory.shape)} != {tuple(self.slots.shape)}")
        self.slots.copy_(new_memory.detach())

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_accumulate(self, feature: Tensor, labels: Tensor) -> None:
        """Add the per-class sums of the L2-normalised F of one batch (docs/method.md §3 initialisation). Call in eval
        mode over the source training data, then :meth:`init_finalize`. Half-precision F is summed in float32,
        float64 F in float64 (so that sums split over ranks add up to one rank's to rounding)."""
        sums, counts = class_sums(F.normalize(at_least_float32(feature), dim=1), labels, self.num_slots)
        if self._init_sums is None or self._init_counts is None:
            self._init_sums = torch.zeros_like(sums, dtype=torch.float64)
            self._init_counts = torch.zeros_like(counts, dtype=torch.float64)
        self._init_sums += sums.double()
        self._init_counts += counts.double()

    @torch.no_grad()
    def init_finalize(self, reduce: Reduce | None = None) -> Tensor:
        """Form the class means (after ``reduce``, e.g. an all-reduce of the sums across ranks), normalise,
        write the buffer and clear the accumulators. Classes never seen stay zero. Returns the per-class
        counts."""
        if self._init_sums is None or self._init_counts is None:
            raise PinmemError(
                "memory initialisation saw no labelled pixels: init_accumulate was never called"
            )
        sums, counts = self._init_sums, self._init_counts
        if reduce is not None:
            sums, counts = reduce(sums), reduce(counts)
        means = torch.where((counts > 0).unsqueeze(1), sums / counts.clamp_min(1e-12).unsqueeze(1), 0.0)
        self.slots.copy_(F.normalize(means, dim=1).to(self.slots.dtype))
        self._init_sums = self._init_counts = None
        return counts.float()

    def extra_repr(self) -> str:
        return (
            f"slots={self.num_slots}, channels={self.channels}, momentum={self.momentum}, "
            f"temperature={self.temperature}, stochastic={self.stochastic}, gumbel_eval={self.gumbel_eval}"
        )
