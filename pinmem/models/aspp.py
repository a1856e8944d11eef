"""Atrous spatial pyramid pooling: DeepLabV3's (concatenation) and DeepLabV2's (sum)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pinmem.models.layers import conv_bn_relu, init_new_layers


def scaled_rates(rates: tuple[int, ...], native_stride: int, output_stride: int) -> tuple[int, ...]:
    """Dilation rates defined at ``native_stride`` rescaled to ``output_stride`` (e.g. 6/12/18 at OS16 become
    12/24/36 at OS8)."""
    return tuple(max(1, r * native_stride // output_stride) for r in rates)


class ASPP(nn.Module):
    """DeepLabV3 ASPP (docs/method.md §2): image pooling + 1×1 + three dilated 3×3, each conv (no bias) → BN → ReLU with
    ``channels`` outputs, concatenated (5·channels). The projection to 256 lives in the segmentation model.

    Branch names: ``pool`` (image pooling), ``branches.0`` (1×1), ``branches.1..3`` (3×3 at ``rates``).
    """

    def __init__(self, cin: int, channels: int = 256, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.pool = conv_bn_relu(cin, channels, 1)
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, channels, 1)] + [conv_bn_relu(cin, channels, 3, r) for r in rates]
        )
        self.out_channels = channels * (len(rates) + 2)
        init_new_layers(self)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs = [pooled.expand(-1, -1, *x.shape[-2:])] + [b(x) for b in self.branches]
        return torch.cat(outs, dim=1)


class ASPPv2(nn.Module):
    """DeepLabV2 ASPP (docs/method.md §2): four dilated 3×3 convs ``cin → channels`` whose outputs are summed.

    As in the released code, each branch is conv (no bias) → BN → ReLU before the sum (the original DeepLabV2
    sums the class-score outputs of plain biased convolutions instead).
    """

    def __init__(self, cin: int, channels: int = 256, rates: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, channels, 3, r) for r in rates])
        self.out_channels = channels
        init_new_layers(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out
