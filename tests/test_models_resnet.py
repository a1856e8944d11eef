"""ResNet backbones: torchvision names and shapes, strict weight loading, dilation, norm variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pinmem.errors import PinmemError
from pinmem.models import ResNet, WeightsError, build_model, load_backbone_weights
from pinmem.models.norms import InstanceWhitening

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_resnet_keys.json"
TV_KEYS: dict[str, dict[str, list[int]]] = json.loads(FIXTURE.read_text())


def _random_state(keys: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def r50_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = _random_state(TV_KEYS["resnet50"])
    path = tmp_path_factory.mktemp("weights") / "resnet50-tv.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("name,depth", [("resnet50", 50), ("resnet101", 101)])
def test_state_dict_matches_torchvision_names_and_shapes(name: str, depth: int) -> None:
    expected = {k: v for k, v in TV_KEYS[name].items() if not k.startswith("fc.")}
    own = {k: list(v.shape) for k, v in ResNet(depth, output_stride=16).state_dict().items()}
    assert own == expected


def test_torchvision_checkpoint_loads_strictly_r50(r50_file: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = r50_file
    model = build_model(backbone="resnet50", backbone_weights=path)
    own = model.backbone.state_dict()
    for k, v in own.items():
        assert torch.equal(v, state[k]), k  # every entry came from the file (fc was ignored)


def test_torchvision_checkpoint_loads_strictly_r101(tmp_path: Path) -> None:
    state = _random_state(TV_KEYS["resnet101"], seed=1)
    for k in [k for k in state if k.endswith("num_batches_tracked")]:
        del state[k]  # the oldest torchvision checkpoints predate num_batches_tracked
    path = tmp_path / "resnet101-tv.pth"
    torch.save(state, path)
    backbone = ResNet(101, output_stride=8)
    load_backbone_weights(backbone, path)
    assert torch.equal(backbone.layer3[22].conv2.weight, state["layer3.22.conv2.weight"])


@pytest.mark.parametrize("norm", ["ibn", "isw"])
def test_norm_variants_load_torchvision_weights(
    norm: str, r50_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    path, state = r50_file
    backbone = ResNet(50, output_stride=16, norm=norm)
    load_backbone_weights(backbone, path)
    assert torch.equal(backbone.layer4[2].bn3.weight, state["layer4.2.bn3.weight"])
    if norm == "ibn":  # the IN that replaces bn1 keeps its affine parameters, the post-add INs stay at init
        assert torch.equal(backbone.bn1.weight, state["bn1.weight"])
        assert torch.all(backbone.layer1[2].instance_norm.weight == 1)


def test_missing_and_unexpected_keys_are_listed(
    tmp_path: Path, r50_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    state = dict(r50_file[1])
    del state["layer2.1.conv2.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    state["layer1.0.bn1.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        build_model(backbone="resnet50", backbone_weights=path)
    msg = str(err.value)
    assert "layer2.1.conv2.weight" in msg and "layer5.0.conv1.weight" in msg and "layer1.0.bn1.weight" in msg
    assert "missing" in msg and "unexpected" in msg and "shape" in msg
    assert isinstance(err.value, PinmemError)


def test_wrong_depth_and_unreadable_files(
    tmp_path: Path, r50_file: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    with pytest.raises(WeightsError, match="unexpected keys"):
        load_backbone_weights(ResNet(18), r50_file[0])
    with pytest.raises(WeightsError, match="not found"):
        load_backbone_weights(ResNet(18), tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_backbone_weights(ResNet(18), garbage)
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, nested)
    with pytest.raises(WeightsError, match="not a plain state_dict"):
        load_backbone_weights(ResNet(18), nested)


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_feature_strides_and_channels(depth: int, output_stride: int) -> None:
    backbone = ResNet(depth, output_stride=output_stride).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert list(feats) == ["layer1", "layer2", "layer3", "layer4"]
    strides = {"layer1": 4, "layer2": 8, "layer3": min(16, output_stride), "layer4": output_stride}
    for name, f in feats.items():
        assert f.shape[1] == backbone.channels[name]
        assert f.shape[-1] == 64 // strides[name], name


def test_dilation_follows_torchvision_replace_stride_with_dilation() -> None:
    os16 = ResNet(50, output_stride=16)
    assert os16.layer4[0].conv2.stride == (1, 1) and os16.layer4[0].conv2.dilation == (1, 1)
    assert os16.layer4[1].conv2.dilation == (2, 2) and os16.layer4[0].downsample[0].stride == (1, 1)
    os8 = ResNet(101, output_stride=8)
    assert os8.layer3[0].conv2.dilation == (1, 1) and os8.layer3[5].conv2.dilation == (2, 2)
    assert os8.layer4[0].conv2.dilation == (2, 2) and os8.layer4[2].conv2.dilation == (4, 4)
    assert os8.layer2[0].conv2.stride == (2, 2) and os8.layer2[0].conv1.stride == (1, 1)  # v1.5
    r18 = ResNet(18, output_stride=8)
    assert r18.layer4[1].conv1.dilation == (4, 4) and r18.layer4[1].conv2.dilation == (4, 4)


def test_no_zero_init_of_last_bn() -> None:
    backbone = ResNet(50)
    assert torch.all(backbone.layer1[0].bn3.weight == 1)


@pytest.mark.parametrize("norm", ["ibn", "isw"])
def test_instance_norm_positions(norm: str) -> None:
    backbone = ResNet(50, norm=norm)
    added = backbone.added_norm_prefixes()
    assert added == ["layer1.2.instance_norm", "layer2.3.instance_norm"]
    kind = InstanceWhitening if norm == "isw" else nn.InstanceNorm2d
    assert isinstance(backbone.bn1, kind) and isinstance(backbone.layer2[3].instance_norm, kind)
    assert (backbone.bn1.weight is not None) == (norm == "ibn")
    assert backbone.layer3[5].instance_norm is None
    out = backbone.train().forward_features(torch.randn(2, 3, 64, 64))
    if norm == "isw":
        assert [tuple(w.shape[:2]) for w in out.whitened] == [(2, 64), (2, 256), (2, 512)]
        for w in out.whitened:  # instance-standardised per channel, taken before the ReLU
            assert torch.allclose(w.mean(dim=(2, 3)), torch.zeros(w.shape[:2]), atol=1e-4)
            assert torch.allclose(w.var(dim=(2, 3), unbiased=False), torch.ones(w.shape[:2]), atol=1e-2)
    else:
        assert out.whitened == []
