"""Loading a torchvision-format ImageNet ResNet checkpoint from a local file into a :class:`ResNet`.

The file must hold a plain ``state_dict`` (name → tensor) with torchvision's names, e.g. the
``resnet50-0676ba61.pth`` / ``resnet101-63fe2227.pth`` files torchvision downloads. Loading is strict:

- ``fc.*`` is ignored (the classifier is not part of the backbone);
- ``*.num_batches_tracked`` may be absent (torchvision's oldest checkpoints predate it);
- norm variants: where ``ibn`` / ``isw`` replaced a BN by an instance norm, the BN entries the instance norm
  has no use for (running statistics; for ``isw`` also weight and bias) are dropped, and the post-add instance
  norms that torchvision does not have keep their initialisation;
- anything else missing, unexpected or of the wrong shape raises :class:`WeightsError` listing every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pinmem.errors import WeightsError
from pinmem.models.resnet import ResNet


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """``torch.load(path, weights_only=True)``, checked to be a mapping of names to tensors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"backbone weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise WeightsError(f"cannot read backbone weights {path}: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, expected a state_dict (name -> tensor)")
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor))
    if bad:
        raise WeightsError(f"{path} is not a plain state_dict; entries that are not tensors: {_fmt(bad)}")
    return dict(obj)


def _fmt(keys: list[str], limit: int = 40) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys) - limit} more)" if len(keys) > limit else "")


def _owner(module: nn.Module, key: str) -> nn.Module | None:
    prefix = key.rpartition(".")[0]
    try:
        return module.get_submodule(prefix)
    except AttributeError:
        return None


def load_backbone_weights(backbone: ResNet, path: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet checkpoint strictly into ``backbone`` (see the module docstring)."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    added = tuple(p + "." for p in backbone.added_norm_prefixes())

    def replaced_by_instance_norm(key: str) -> bool:
        owner = _owner(backbone, key)
        return isinstance(owner, nn.InstanceNorm2d) and key not in own

    unexpected = sorted(
        k for k in state if k not in own and not k.startswith("fc.") and not replaced_by_instance_norm(k)
    )
    missing = sorted(
        k
        for k in own
        if k not in state and not k.endswith(".num_batches_tracked") and not k.startswith(added)
    )
    wrong = sorted(
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    )
    if unexpected or missing or wrong:
        parts = [f"backbone weights {os.fspath(path)} do not match ResNet-{backbone.depth}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches ({len(wrong)}): {_fmt(wrong)}")
        raise WeightsError("; ".join(parts))
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
