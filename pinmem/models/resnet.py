"""ResNet-18/34/50/101 backbones with torchvision's parameter names (ResNet v1.5) and dilation.

Parameter names and shapes match ``torchvision.models.resnetXX`` (``conv1``, ``bn1``, ``layer1.0.conv1``, …,
``layerN.0.downsample.{0,1}``) without ``fc``, so a torchvision ImageNet checkpoint loads strictly
(:func:`pinmem.models.weights.load_backbone_weights`). The stride of a bottleneck sits on its 3×3 convolution
(v1.5). Output stride 16 / 8 follows torchvision's ``replace_stride_with_dilation``: the stride-2 of layer4
(and of layer3 at OS8) becomes a dilation; the first block of a dilated layer keeps the previous dilation, the
following blocks use the new one. Unlike torchvision, BasicBlock (ResNet-18/34) accepts dilation.

Initialisation from scratch follows torchvision (Kaiming-normal fan_out for convolutions, BN weight 1 bias 0);
the last BN of each residual branch is *not* zero-initialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from pinmem.models.norms import (
    NORM_KINDS,
    InstanceWhitening,
    added_instance_norms,
    init_trunk,
    post_add_norm,
    stem_norm,
)

# depth -> (block type, blocks per stage)
RESNET_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
# output stride -> which of layer2..layer4 replace their stride by a dilation
_DILATE: dict[int, tuple[bool, bool, bool]] = {
    32: (False, False, False),
    16: (False, False, True),
    8: (False, True, True),
}
OUTPUT_STRIDES: tuple[int, ...] = tuple(sorted(_DILATE))


@dataclass
class BackboneFeatures:
    """What the backbone computes: ``maps`` takes ``layer1``…``layer4`` to tensors; ``whitened`` holds
    the instance-whitened maps (stem, end of layer1, end of layer2) for the ISW loss, empty unless
    ``norm="isw"``."""

    maps: dict[str, Tensor]
    whitened: list[Tensor] = field(default_factory=list)


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class _Block(nn.Module):
    """Common tail of both block types: residual add, optional post-add instance norm, ReLU."""

    expansion = 1
    downsample: nn.Module | None
    instance_norm: nn.Module | None

    def residual(self, x: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} must define residual()")

    def forward_with_norm(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Block output, plus the post-add instance-normalised map (before ReLU) when there is one."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.residual(x) + identity
        normed = None
        if self.instance_norm is not None:
            out = normed = self.instance_norm(out)
        return torch.relu(out), normed

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_norm(x)[0]


class BasicBlock(_Block):
    expansion = 1

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        instance_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.instance_norm = instance_norm

    def residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_Block):
    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        instance_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)  # v1.5: the stride sits here
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.instance_norm = instance_norm

    def residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNet(nn.Module):
    """ResNet trunk without the classifier. ``backbone(x)`` returns ``{"layer1": …, …, "layer4": …}``.

    Args:
        depth: 18, 34, 50 or 101.
        output_stride: 32 (no dilation), 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
        norm: ``bn``, ``ibn`` or ``isw`` (see :mod:`pinmem.models.norms`).
    """

    def __init__(self, depth: int = 50, output_stride: int = 16, norm: str = "bn") -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(RESNET_DEPTHS)}")
        if output_stride not in _DILATE:
            raise ValueError(f"unsupported output stride {output_stride}; expected one of {OUTPUT_STRIDES}")
        if norm not in NORM_KINDS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORM_KINDS}")
        kind, layers = RESNET_DEPTHS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.output_stride, self.norm = depth, output_stride, norm
        self._inplanes, self._dilation = 64, 1

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = stem_norm(norm, 64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate = _DILATE[output_stride]
        self.layer1 = self._make_layer(
            block, 64, layers[0], 1, False, post_add_norm(norm, 64 * block.expansion)
        )
        self.layer2 = self._make_layer(
            block, 128, layers[1], 2, dilate[0], post_add_norm(norm, 128 * block.expansion)
        )
        self.layer3 = self._make_layer(block, 256, layers[2], 2, dilate[1], None)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, dilate[2], None)
        self.channels: dict[str, int] = {
            f"layer{i + 1}": c * block.expansion for i, c in enumerate((64, 128, 256, 512))
        }
        self.reset_parameters()

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        dilate: bool,
        last_norm: nn.Module | None,
    ) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods: list[nn.Module] = [
            block(
                self._inplanes,
                planes,
                stride,
                previous_dilation,
                downsample,
                last_norm if blocks == 1 else None,
            )
        ]
        self._inplanes = planes * block.expansion
        for i in range(1, blocks):
            mods.append(
                block(self._inplanes, planes, 1, self._dilation, None, last_norm if i == blocks - 1 else None)
            )
        return nn.Sequential(*mods)

    def reset_parameters(self) -> None:
        init_trunk(self)

    def added_norm_prefixes(self) -> list[str]:
        """Module names of the post-add instance norms (absent from a torchvision checkpoint)."""
        return added_instance_norms(self)

    def forward_features(self, x: Tensor) -> BackboneFeatures:
        """All stage outputs plus the instance-whitened maps the ISW loss needs."""
        whitened: list[Tensor] = []
        x = self.bn1(self.conv1(x))
        if isinstance(self.bn1, InstanceWhitening):
            whitened.append(x)
        x = self.maxpool(torch.relu(x))  # not in place: the whitened map above must stay intact
        features: dict[str, Tensor] = {}
        for name in ("layer1", "layer2", "layer3", "layer4"):
            for blk in getattr(self, name):
                x, normed = blk.forward_with_norm(x)
                if normed is not None and isinstance(blk.instance_norm, InstanceWhitening):
                    whitened.append(normed)
            features[name] = x
        return BackboneFeatures(features, whitened)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward_features(x).maps

