"""pinmem: Pin the Memory (Kim et al., CVPR 2022) for domain-generalised semantic segmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pinmem.errors import PinmemError

if TYPE_CHECKING:
    from pinmem.inference import Segmenter

__version__ = "0.1.0"

__all__ = ["PinmemError", "__version__", "load"]


def load(checkpoint: Any, device: Any = "cpu", mode: str = "whole", **kwargs: Any) -> Segmenter:
    """A ready-to-use segmenter from a checkpoint: ``pinmem.load(path).predict(rgb_uint8) -> trainIds``.

    Imported lazily so that ``import pinmem`` stays light; see :func:`pinmem.inference.load` for the options.
    """
    from pinmem.inference import load as _load

    return _load(checkpoint, device=device, mode=mode, **kwargs)
