"""DeepLabV2 (docs/method.md §2, Table 4 / 12 of the paper) with an optional Pin the Memory module."""

from __future__ import annotations

from torch import Tensor, nn

from pinmem.models.aspp import ASPPv2, scaled_rates
from pinmem.models.base import Backbone, SegmentationModel
from pinmem.models.layers import conv_bn_relu, init_new_layers
from pinmem.models.memory import PinMemory
from pinmem.models.resnet import BackboneFeatures


class DeepLabV2(SegmentationModel):
    """DeepLabV2 on a ResNet trunk (normally R101 at OS8) or an EfficientNet-Lite0 one.

    layer4 → ``aspp`` (ASPP-v2: four 3×3 conv → 256 at rates 6/12/18/24 at OS8, scaled by 8/OS, summed)
    = F → [``memory`` → R] → ``head`` (3×3 conv 256, BN, ReLU) → ``classifier`` (1×1, bias) → bilinear
    upsample to the input size. docs/method.md §2 defines the auxiliary head only for DeepLabV3+; the released
    DeepLabV2 has the same layer3 head (``dsn``) and trains with it, so ``aux_head=True`` is the default
    here as well.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        memory: PinMemory | None = None,
        aux_head: bool = True,
        channels: int = 256,
    ) -> None:
        super().__init__(backbone, num_classes, memory, aux_head)
        rates = scaled_rates((6, 12, 18, 24), 8, backbone.output_stride)
        self.aspp = ASPPv2(backbone.channels["layer4"], channels, rates)
        self.head = conv_bn_relu(channels, channels, 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        init_new_layers(self.head)
        init_new_layers(self.classifier)

    def encoder_outputs(self, x: Tensor) -> tuple[BackboneFeatures, Tensor]:
        """The backbone's features and F (backbone and ASPP-v2)."""
        bb = self.backbone.forward_features(x)
        return bb, self.aspp(bb.maps["layer4"])

    def decode(self, bb: BackboneFeatures, head_in: Tensor) -> Tensor:
        """3×3 head and classifier on R (or F) -> logits at F's size."""
        return self.classifier(self.head(head_in))
