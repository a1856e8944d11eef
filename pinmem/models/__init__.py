"""Models: ResNet and EfficientNet-Lite0 backbones (bn / ibn / isw), DeepLabV3+ and DeepLabV2, the Pin the Memory
module, the losses.

Entry point: :func:`build_model`. See ``docs/models.md``.
"""

from pinmem.models.base import Backbone, SegmentationModel, SegmentationOutput
from pinmem.models.deeplabv2 import DeepLabV2
from pinmem.models.deeplabv3plus import DeepLabV3Plus
from pinmem.models.efficientnet import EfficientNetLite, efficientnet_lite0
from pinmem.models.factory import ARCHS, BACKBONES, build_model
from pinmem.models.memory import MemoryOutput, MemoryRead, PinMemory, UpdateNetwork
from pinmem.models.memory_ops import class_sums, label_weights, write_memory
from pinmem.models.resnet import BackboneFeatures, ResNet
from pinmem.models.weights import WeightsError, load_backbone_weights

__all__ = [
    "ARCHS",
    "BACKBONES",
    "Backbone",
    "BackboneFeatures",
    "DeepLabV2",
    "DeepLabV3Plus",
    "EfficientNetLite",
    "MemoryOutput",
    "MemoryRead",
    "PinMemory",
    "ResNet",
    "SegmentationModel",
    "SegmentationOutput",
    "UpdateNetwork",
    "WeightsError",
    "build_model",
    "class_sums",
    "efficientnet_lite0",
    "label_weights",
    "load_backbone_weights",
    "write_memory",
]
