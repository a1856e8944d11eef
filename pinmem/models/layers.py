"""Small building blocks shared by the heads, and the initialisation of new (non-backbone) layers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(cin: int, cout: int, kernel_size: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias) → BatchNorm → ReLU, 'same' padding. Children are named ``0``, ``1``, ``2``."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def init_new_layers(module: nn.Module) -> None:
    """docs/method.md §2 for layers added on top of the backbone: Kaiming-normal (fan_in, ReLU) weights for convolutions
    and linear layers, zero bias; BatchNorm weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resize(x: Tensor, size: tuple[int, int] | list[int]) -> Tensor:
    """Bilinear resize with ``align_corners=True`` (the convention of the DeepLab heads and the memory)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class AuxHead(nn.Module):
    """Auxiliary head on layer3 (docs/method.md §2): 3×3 conv → 512, BN, ReLU, Dropout2d(0.1), 1×1 conv → classes."""

    def __init__(self, cin: int, num_classes: int, hidden: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.block = conv_bn_relu(cin, hidden, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)
        init_new_layers(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.block(x)))
