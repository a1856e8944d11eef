"""pinmem: Pin the Memory (Kim et al., CVPR 2022) for domain-generalised semantic segmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pinmem.errors import PinmemError

if TYPE_CHECKING:
    from pinmem.evaluation.inference import InferenceSettings
    from pinmem.segmenter import Segmenter

__version__ = "0.1.0"

__all__ = ["PinmemError", "__version__", "load"]


def load(checkpoint: Any, settings: InferenceSettings | None = None, **options: Any) -> Segmenter:
    """A ready-to-use segmenter from a checkpoint: ``pinmem.load(path).predict(rgb_uint8) -> trainIds``.

    ``settings`` / ``options``: how it predicts (``mode="slide"``, ``flip=True``, ``device="cuda"``, ``max_side``
    …). Imported lazily so that ``import pinmem`` stays light; see :func:`pinmem.segmenter.load`.
    """
    from pinmem.segmenter import load as _load

    return _load(checkpoint, settings, **options)
