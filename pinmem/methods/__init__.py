"""Training methods, one module each, one interface (:class:`~pinmem.methods.base.Method`).

``erm`` (the paper's Baseline), ``ibn`` (ERM on the IBN backbone), ``isw`` (RobustNet), ``mldg`` and
``pinmem`` (Pin the Memory, Algorithm 1). :data:`METHOD_CLASSES` has the names of
:data:`pinmem.engine.method_specs.METHOD_SPECS`, which holds each method's properties (meta-learning, AMP modes,
memory, normalisation) for the code below the methods.
"""

from __future__ import annotations

from pinmem.engine.config import Config
from pinmem.engine.distributed import DistContext
from pinmem.engine.method_specs import method_spec
from pinmem.errors import ConfigError
from pinmem.methods.base import Method
from pinmem.methods.erm import ERM
from pinmem.methods.isw import ISW
from pinmem.methods.mldg import MLDG
from pinmem.methods.pinmem import PinTheMemory
from pinmem.models.base import SegmentationModel

METHOD_CLASSES: dict[str, type[Method]] = {"erm": ERM, "ibn": ERM, "isw": ISW, "mldg": MLDG, "pinmem": PinTheMemory}


def build_method(config: Config, model: SegmentationModel, context: DistContext) -> Method:
    """The method ``config.method`` for ``model``."""
    if config.method not in METHOD_CLASSES:
        raise ConfigError(f"unknown method {config.method!r}; choose one of {', '.join(METHOD_CLASSES)}")
    trains_memory = method_spec(config.method).memory
    if not trains_memory and model.memory is not None:
        raise ConfigError(f"model.memory=true is only trained by method pinmem (method is {config.method})")
    if trains_memory and model.memory is None:
        raise ConfigError(f"method {config.method} needs the memory module (model.memory must not be false)")
    return METHOD_CLASSES[config.method](model, config, context)


__all__ = ["METHOD_CLASSES", "Method", "build_method"]
