"""What the configuration and the trainer know about each training method, without importing the methods.

The method classes sit above the configuration in the layers (``tests/test_layers.py``); their registry
(:data:`pinmem.methods.METHOD_CLASSES`) has exactly the names of :data:`METHOD_SPECS`, and every property of a
method that code below or beside the methods needs (meta-learning or not, the autocast modes allowed, the memory,
the backbone normalisation) is read here, never from a method's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinmem.models.norms import NORM_KINDS
from pinmem.runtime import AMP_MODES


@dataclass(frozen=True)
class MethodSpec:
    """One method's properties.

    ``meta``: an inner gradient step (meta-learning): ``meta.*`` applies, a single source is split into meta-train
    and meta-test halves (the released code also gave these methods its strong colour jitter: the paper's configs
    set ``data.strong_jitter=first_source`` for them), and fp16 autocast is not allowed (its gradient scaler has
    no inner step). ``memory``: trains the memory module (``model.memory`` defaults to true). ``norm``: the backbone
    normalisation ``model.norm`` defaults to."""

    meta: bool = False
    memory: bool = False
    norm: str = "bn"

    def __post_init__(self) -> None:
        if self.norm not in NORM_KINDS:
            raise ValueError(f"norm {self.norm!r} is not one of {NORM_KINDS}")

    @property
    def amp_modes(self) -> tuple[str, ...]:
        """The ``train.amp`` modes the method trains under."""
        return tuple(m for m in AMP_MODES if not (self.meta and m == "fp16"))


#: every method, in the order of the paper's Table 1 rows
METHOD_SPECS: dict[str, MethodSpec] = {
    "erm": MethodSpec(),
    "ibn": MethodSpec(norm="ibn"),
    "isw": MethodSpec(norm="isw"),
    "mldg": MethodSpec(meta=True),
    "pinmem": MethodSpec(meta=True, memory=True),
}
METHOD_NAMES: tuple[str, ...] = tuple(METHOD_SPECS)


def method_spec(name: str) -> MethodSpec:
    """The properties of method ``name`` (an unknown name: those of ERM; the configuration's checks name it)."""
    return METHOD_SPECS.get(name, MethodSpec())
