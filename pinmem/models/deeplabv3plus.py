"""DeepLabV3+ (docs/method.md §2) with an optional Pin the Memory module between the ASPP projection and the decoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pinmem.models.aspp import ASPP, scaled_rates
from pinmem.models.base import Backbone, SegmentationModel
from pinmem.models.layers import conv_bn_relu, init_new_layers, resize
from pinmem.models.memory import PinMemory
from pinmem.models.resnet import BackboneFeatures


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ on a ResNet or EfficientNet-Lite0 trunk.

    layer4 → ``aspp`` (rates 6/12/18 at OS16, scaled by 16/OS) → ``project`` (1×1 1280→256, BN, ReLU) = F →
    [``memory`` read/write → R] → upsample ×4 to layer1's size, concatenated with ``low_level``(layer1)
    (1×1 → 48, BN, ReLU) → ``decoder`` (two 3×3 conv 256, BN, ReLU) → ``classifier`` (1×1, bias) → bilinear
    upsample to the input size. ``aux_head`` on layer3. All resizing is bilinear with ``align_corners=True``.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        memory: PinMemory | None = None,
        aux_head: bool = True,
        channels: int = 256,
        low_level_channels: int = 48,
    ) -> None:
        super().__init__(backbone, num_classes, memory, aux_head)
        rates = scaled_rates((6, 12, 18), 16, backbone.output_stride)
        self.aspp = ASPP(backbone.channels["layer4"], channels, rates)
        self.project = conv_bn_relu(self.aspp.out_channels, channels, 1)
        self.low_level = conv_bn_relu(backbone.channels["layer1"], low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_bn_relu(channels + low_level_channels, channels, 3), conv_bn_relu(channels, channels, 3)
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        for m in (self.project, self.low_level, self.decoder, self.classifier):
            init_new_layers(m)

    def encoder_outputs(self, x: Tensor) -> tuple[BackboneFeatures, Tensor]:
        """The backbone's features and F (backbone, ASPP, projection)."""
        bb = self.backbone.forward_features(x)
        return bb, self.project(self.aspp(bb.maps["layer4"]))

    def decode(self, bb: BackboneFeatures, head_in: Tensor) -> Tensor:
        """Decoder on R (or F) and layer1's low-level feature -> logits at layer1's size."""
        low = self.low_level(bb.maps["layer1"])
        y = torch.cat([low, resize(head_in, low.shape[-2:])], dim=1)
        return self.classifier(self.decoder(y))
