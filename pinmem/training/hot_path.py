"""The training step's hot path on a GPU (issue 12, docs/training.md "GPU options"): what the trainer does per iteration
besides the method's step, kept free of host-device synchronisation.

* :func:`to_device`: a batch's images and labels to the device with ``non_blocking=True`` (asynchronous from the
  page-locked memory the loader pins them in when training on CUDA), images in the training dtype and, with
  ``train.channels_last``, in the channels-last memory format.
* :func:`loss_values`: the step's loss terms (tensors or Python floats) as floats with one synchronisation, for the
  logging every ``train.log_every`` iterations; :func:`loss_tensors` the same terms as device tensors without one,
  for the finiteness check folded into the step's one existing synchronisation.
* :func:`cudnn_benchmark`: cuDNN's algorithm search while training on CUDA.
* :func:`compile_encoder`: ``torch.compile`` of the encoder (``train.compile``) that falls back to the uncompiled
  encoder, with a logged warning naming the exception, where compiling fails.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger("pinmem")


def to_device(batch: Mapping[str, Mapping[str, Any]], device: torch.device, dtype: torch.dtype,
              channels_last: bool = False) -> dict[str, dict[str, Any]]:
    """``{domain: {"image", "label", ...}}`` with images and labels on ``device``. The copies are ``non_blocking``:
    from pinned memory the host goes on at once (on CPU they are no-ops). Images end in ``dtype`` (converted on the
    device, after the copy) and, with ``channels_last``, in ``torch.channels_last``; the methods' concatenation and
    ``.to`` keep that format. Other entries (``index``, ``skipped``) stay as they are."""
    layout = torch.channels_last if channels_last else torch.preserve_format
    moved: dict[str, dict[str, Any]] = {}
    for domain, part in batch.items():
        moved[domain] = dict(part)
        image = part["image"].to(device, non_blocking=True)
        moved[domain]["image"] = image.to(dtype=dtype, memory_format=layout)
        moved[domain]["label"] = part["label"].to(device, non_blocking=True)
    return moved


def loss_tensors(losses: Mapping[str, Tensor | float], device: torch.device) -> dict[str, Tensor]:
    """The loss terms as tensors on ``device``: tensors as they are, a Python float (a method that already read its
    value) as a 0-d tensor filled on the device (``torch.full``: no copy, no synchronisation)."""
    return {name: value if isinstance(value, Tensor) else torch.full((), float(value), device=device)
            for name, value in losses.items()}


def loss_values(losses: Mapping[str, Tensor | float]) -> dict[str, float]:
    """The loss terms as Python floats, with one host-device synchronisation for all the tensors (stacked, read
    once) and none for terms that are floats already."""
    tensors = {name: value for name, value in losses.items() if isinstance(value, Tensor)}
    read: dict[str, float] = {}
    if len({t.device for t in tensors.values()}) == 1:  # stacked in the promoted dtype: every value exact
        stacked = torch.stack([t.detach().reshape(()) for t in tensors.values()])
        read = dict(zip(tensors, stacked.cpu().tolist(), strict=True))
    return {name: read[name] if name in read else float(value) for name, value in losses.items()}


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark = enabled`` while inside, on a CUDA device (elsewhere nothing changes);
    the previous value afterwards. Training crops have one size (``train.crop_size``; the collate function refuses
    others) and the meta-split gives a few batch shapes, so cuDNN's search for the fastest convolution algorithm
    runs once per shape and pays for itself at once; validation on whole images of varying sizes would search
    again at every new size, so the trainer turns it off there. The algorithms it picks may differ between runs:
    on a GPU, resumed runs are not bit-for-bit equal to uninterrupted ones anyway."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


class CompiledCall:
    """A compiled function with its uncompiled original: calls the compiled one until a call raises, then logs a
    warning naming the exception and calls the original from then on (the failing call is repeated uncompiled, so
    an error of the code itself, not of the compiler, is raised again from there).

    Compilation happens at the first call of each new variant (input shapes, train/eval mode, gradient mode,
    parameters swapped in by ``torch.func.functional_call``); a compiler error there is raised before the graph
    runs, so repeating the call uncompiled updates the BN running statistics once. (Where the encoder had a graph
    break and the compilation of its second part failed, the first part has run: that one call updates the
    statistics of the layers before the break twice.)"""

    def __init__(self, original: Callable[..., Any], compiled: Callable[..., Any] | None, what: str) -> None:
        self.original, self.compiled, self.what = original, compiled, what
        self.error: BaseException | None = None

    @property
    def active(self) -> bool:
        """Whether calls still go to the compiled function."""
        return self.compiled is not None and self.error is None

    def fall_back(self, error: BaseException) -> None:
        self.error = error
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        log.warning("train.compile: compiling %s failed (%s: %s); training goes on with the uncompiled %s",
                    self.what, type(error).__name__, first[:300], self.what)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.active:
            assert self.compiled is not None
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure; a real error recurs uncompiled
                self.fall_back(err)
        return self.original(*args, **kwargs)


def compile_encoder(model: nn.Module) -> CompiledCall:
    """``torch.compile`` the encoder E of a segmentation model: its ``encoder_outputs`` method (the backbone, and
    the ASPP and projection that make F), replaced by a :class:`CompiledCall` on the instance, so that the
    state-dict keys, the checkpoints and ``torch.func.functional_call`` (the meta-learning's θ′) see the same
    module as before.

    Checked on CPU (``tests/test_hot_path.py``): a first-order MLDG/Pin the Memory step through the compiled
    encoder, with θ′ swapped in by ``functional_call``, in train and eval mode and under ``no_grad``, gives the
    uncompiled numbers (float64: to 1e-13). A second backward through a compiled graph raises (AOTAutograd has no
    double backward), so the configuration refuses ``train.compile`` with second-order meta-learning."""
    original = model.encoder_outputs
    try:
        compiled = torch.compile(original)
    except Exception as err:  # noqa: BLE001 - e.g. a torch build or platform without the compiler
        call = CompiledCall(original, None, "the encoder")
        call.fall_back(err)
        return call
    call = CompiledCall(original, compiled, "the encoder")
    model.encoder_outputs = call  # an instance attribute: found before the class's method, invisible to state_dict
    return call
