"""What every segmentation model here shares: the output structure, the memory step and the auxiliary head."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor, nn

from pinmem.models.layers import AuxHead, resize
from pinmem.models.memory import PinMemory
from pinmem.models.resnet import BackboneFeatures


class Backbone(Protocol):
    """What the heads need from a trunk (an ``nn.Module``): :class:`~pinmem.models.resnet.ResNet` and
    :class:`~pinmem.models.efficientnet.EfficientNetLite` provide it.

    ``channels`` maps ``layer1``…``layer4`` to their channel counts (strides 4, 8, 16 and the output stride);
    ``forward_features`` returns those four maps and, for ``norm="isw"``, the instance-whitened ones.
    """

    channels: dict[str, int]
    output_stride: int
    norm: str

    def forward_features(self, x: Tensor) -> BackboneFeatures: ...


@dataclass
class SegmentationOutput:
    """Forward result of a segmentation model.

    Attributes:
        logits: main logits at input size (B×N×H×W).
        feature: F, the 256-channel feature the memory works on (B×256×h×w).
        aux_logits: auxiliary-head logits at layer3's size, or None (eval mode by default, or no aux head).
        cosine: s, cosine similarity of q with every slot (B×N×h×w), when the model has a memory.
        read_weights: W, the read's softmax weights (B×N×h×w), when the model has a memory.
        memory_hat: M̂ (N×C) when ``labels`` were passed to a memory model (a write happened), else None.
        whitening_features: the instance-whitened maps for the ISW loss (``norm="isw"``), else empty.
    """

    logits: Tensor
    feature: Tensor
    aux_logits: Tensor | None = None
    cosine: Tensor | None = None
    read_weights: Tensor | None = None
    memory_hat: Tensor | None = None
    whitening_features: list[Tensor] = field(default_factory=list)


class SegmentationModel(nn.Module, metaclass=ABCMeta):
    """Base of :class:`DeepLabV3Plus` and :class:`DeepLabV2`: ``backbone``, optional ``memory``, ``aux_head``.

    ``forward(x, labels=None, memory=None, compute_aux=None)``:
        x: images B×3×H×W. labels: trainIds B×H×W (255 ignored); with a memory they trigger a write (M̂ in
        ``memory_hat``; the read then uses the detached memory). memory: N×C tensor overriding the buffer for
        this pass. compute_aux: run the auxiliary head (default: in training mode only).
    """

    def __init__(self, backbone: Backbone, num_classes: int, memory: PinMemory | None, aux_head: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.memory = memory
        self.aux_head = AuxHead(backbone.channels["layer3"], num_classes) if aux_head else None

    @abstractmethod
    def encoder_outputs(self, x: Tensor) -> tuple[BackboneFeatures, Tensor]:
        """The backbone's features and F, the feature the memory works on (each architecture defines it)."""

    def encode(self, x: Tensor) -> Tensor:
        """F alone, without the decoder: what the memory initialisation and writes need."""
        return self.encoder_outputs(x)[1]

    @abstractmethod
    def decode(self, bb: BackboneFeatures, head_in: Tensor) -> Tensor:
        """Logits (before the final upsampling) from the backbone features and the head's input R (or F)."""

    def forward(
        self,
        x: Tensor,
        labels: Tensor | None = None,
        memory: Tensor | None = None,
        compute_aux: bool | None = None,
    ) -> SegmentationOutput:
        bb, feature = self.encoder_outputs(x)
        head_in, mem = self.memory_step(feature, labels, memory)
        return SegmentationOutput(
            logits=resize(self.decode(bb, head_in), x.shape[-2:]),
            feature=feature,
            aux_logits=self.aux(bb.maps["layer3"], compute_aux),
            whitening_features=bb.whitened,
            **mem,
        )

    def memory_step(
        self, feature: Tensor, labels: Tensor | None, memory: Tensor | None
    ) -> tuple[Tensor, dict[str, Tensor | None]]:
        """Feature the head sees (R with a memory, F without) and the memory fields of the output."""
        if self.memory is None:
            if memory is not None:
                raise ValueError("a memory tensor was passed to a model built without memory")
            return feature, {}
        out = self.memory(feature, labels=labels, memory=memory)
        return out.fused, {"cosine": out.cosine, "read_weights": out.weights, "memory_hat": out.memory_hat}

    def aux(self, layer3: Tensor, compute_aux: bool | None) -> Tensor | None:
        run = self.training if compute_aux is None else compute_aux
        return self.aux_head(layer3) if run and self.aux_head is not None else None
