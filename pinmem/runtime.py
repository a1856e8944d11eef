"""Where a model runs and in which precision: device resolution and autocast, one helper each.

A low module (beside :mod:`pinmem.errors`), so that evaluation, inference, training and the benchmarks share one
spelling of each:

* :data:`AMP_DTYPES`, the registry of AMP modes (``none``, ``bf16``, ``fp16``) → the autocast dtype; every list
  of AMP modes (config choices, command-line choices) is ``tuple(AMP_DTYPES)``;
* :func:`autocast`, the context manager of one AMP mode on one device;
* :func:`resolve_device`, ``auto``/``cpu``/``cuda:N`` → a ``torch.device`` (with a clear error when CUDA is asked
  for and missing), and :func:`model_device`, where a model's parameters are.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from pinmem.errors import ConfigError

#: AMP mode → autocast dtype (``None``: no autocast); the one list of AMP modes
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES: tuple[str, ...] = tuple(AMP_DTYPES)


def autocast(amp: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` of AMP mode ``amp`` (:data:`AMP_DTYPES`) on ``device``'s type; ``none``: a no-op."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


#: the device types pinmem runs on (``torch.device`` accepts more, e.g. ``meta``, on which nothing can train)
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(device: str | torch.device | None, option: str = "device") -> torch.device:
    """``auto``/None → CUDA if available, else CPU. A string that is no device, or a CUDA device without CUDA,
    is a :class:`ConfigError` naming ``option`` (``--device``, ``train.device``), checked once, here, for every
    command and for the training configuration."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        dev = None
        cause: Exception | None = err
    else:
        cause = None
    if dev is None or dev.type not in DEVICE_TYPES:
        raise ConfigError(f"{option}={str(device)!r} is not a device (valid: auto, cpu, cuda, cuda:N, mps, xpu)"
                          ) from cause
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}={str(device)!r} but this torch ({torch.__version__}) sees no CUDA device; "
                          f"use {option}=cpu or auto")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")
