"""Normalisation variants of the ResNet backbone, selected by name.

``bn``
    Plain ResNet: BatchNorm2d everywhere (torchvision's layout).
``ibn``
    RobustNet's "IBN-Net" baseline (docs/method.md §6): ``InstanceNorm2d(affine=True)`` replaces the stem BN (``bn1``)
    and is applied after the residual add, before the ReLU, of the *last* block of ``layer1`` and
    ``layer2``. This is **not** the channel-split IBN-a of Pan et al. (2018), which gives half of the
    channels of the first norm of every block to IN and half to BN; it is the variant RobustNet and the Pin
    the Memory code train.
``isw``
    RobustNet's instance selective whitening (ISW): instance whitening, i.e. ``InstanceNorm2d`` *without*
    affine parameters, at the same three places. Its outputs are the "whitened features" on which the ISW
    loss (:func:`pinmem.models.losses.whitening_loss`) penalises the style-sensitive covariance entries; the
    backbone returns them in :attr:`BackboneFeatures.whitened`.
"""

from __future__ import annotations

from torch import nn

NORM_KINDS: tuple[str, ...] = ("bn", "ibn", "isw")


class InstanceWhitening(nn.InstanceNorm2d):
    """Instance whitening layer (ISW): per-instance, per-channel standardisation without affine parameters.

    A distinct class so the backbone can tell which outputs feed the ISW loss.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, affine=False, track_running_stats=False)


def stem_norm(kind: str, channels: int) -> nn.Module:
    """The norm after the stem's 7×7 convolution (torchvision's ``bn1``)."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "ibn":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "isw":
        return InstanceWhitening(channels)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


def post_add_norm(kind: str, channels: int) -> nn.Module | None:
    """The norm applied after the residual add of the last block of layer1 and layer2 (None for ``bn``)."""
    if kind == "bn":
        return None
    if kind == "ibn":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "isw":
        return InstanceWhitening(channels)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


def init_trunk(module: nn.Module) -> None:
    """From-scratch initialisation of a backbone trunk: Kaiming-normal fan_out convolutions, norm weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def added_instance_norms(module: nn.Module) -> list[str]:
    """Module names of the instance norms a trunk adds after blocks (absent from an ImageNet checkpoint)."""
    return [name for name, m in module.named_modules() if name.endswith(".instance_norm")]
