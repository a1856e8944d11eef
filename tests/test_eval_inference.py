"""Whole-image and sliding-window inference, flip, target BN and evaluate()."""

import numpy as np
import pytest
import torch
from torch import nn

from pinmem.errors import ConfigError
from pinmem.evaluation import (
    ConfusionMatrix,
    InferenceSettings,
    evaluate,
    infer,
    merge_results,
    recompute_bn_statistics,
    target_batchnorm,
    window_starts,
)
from pinmem.models import build_model


class Pointwise(nn.Module):
    """A 1×1 'segmentation model': each pixel's logits depend on that pixel only (any window gives the same)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 19, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture(scope="module")
def memory_model():
    torch.manual_seed(0)
    model = build_model(arch="deeplabv3plus", backbone="resnet18", memory=True).eval()
    model.memory.slots.copy_(torch.nn.functional.normalize(torch.randn(19, 256), dim=1))
    return model


def test_window_starts_cover_and_stay_inside():
    for size in (1, 100, 768, 769, 1024, 2048, 1537):
        starts = window_starts(size, 768, 512)
        assert starts[0] == 0 and all(s + min(768, size) <= max(size, 768) for s in starts)
        assert starts[-1] + 768 >= size
    assert window_starts(2048, 768, 512) == [0, 512, 1024, 1280]
    assert window_starts(1024, 768, 512) == [0, 256]


def test_slide_equals_whole_when_the_window_covers_the_image(memory_model):
    x = torch.randn(2, 3, 64, 96)
    whole = infer(memory_model, x, with_memory=True)
    for crop in (96, 128):  # exactly the image's long side, or larger: one window
        settings = InferenceSettings(mode="slide", crop=crop, stride=32, batch_size=2)
        slide = infer(memory_model, x, settings, with_memory=True)
        torch.testing.assert_close(slide.logits, whole.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(slide.cosine, whole.cosine, atol=1e-5, rtol=1e-5)
    assert whole.logits.shape == (2, 19, 64, 96) and whole.cosine.shape == (2, 19, 64, 96)


def test_slide_averages_overlaps_exactly():
    model, x = Pointwise().eval(), torch.randn(2, 3, 50, 77)
    whole = infer(model, x).logits
    for crop, stride, pad in ((16, 16, False), (32, 8, False), (20, 13, True), (64, 10, True)):
        slide = infer(model, x, mode="slide", crop=crop, stride=stride, batch_size=5, pad=pad).logits
        torch.testing.assert_close(slide, whole, atol=1e-5, rtol=1e-5)
    # flip: a pointwise model is flip-equivariant, so flipping changes nothing
    torch.testing.assert_close(infer(model, x, mode="slide", flip=True, crop=32, stride=24).logits, whole)


def test_padding_small_images_changes_context(memory_model):
    x = torch.randn(1, 3, 64, 64)
    whole = infer(memory_model, x).logits
    padded = infer(memory_model, x, mode="slide", crop=96, stride=64, pad=True).logits
    assert padded.shape == whole.shape and not torch.allclose(padded, whole, atol=1e-4)


def test_flip_averages_the_mirrored_prediction(memory_model):
    x = torch.randn(1, 3, 64, 64)
    plain = infer(memory_model, x).logits
    mirrored = infer(memory_model, x.flip(-1)).logits.flip(-1)
    torch.testing.assert_close(infer(memory_model, x, flip=True).logits, (plain + mirrored) / 2)


def test_target_bn_uses_batch_statistics_and_keeps_running_stats(memory_model):
    bn = memory_model.backbone.bn1
    before = {k: v.clone() for k, v in memory_model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64) * 3 + 1
    seen = {}
    handle = bn.register_forward_hook(lambda m, i, o: seen.update(x=i[0], y=o))
    with target_batchnorm(memory_model):
        out_tbn = infer(memory_model, x).logits
        out_one = infer(memory_model, x[:1]).logits  # batch of one: the 1×1 pooling BN falls back, no error
    handle.remove()
    mean = seen["x"].mean((0, 2, 3), keepdim=True)
    var = seen["x"].var((0, 2, 3), unbiased=False, keepdim=True)
    w, b = bn.weight.view(1, -1, 1, 1), bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(seen["y"], (seen["x"] - mean) / torch.sqrt(var + bn.eps) * w + b, atol=1e-4, rtol=1e-4)
    after = memory_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not memory_model.training and not bn.training and bn.track_running_stats
    assert not torch.allclose(out_tbn, infer(memory_model, x).logits)
    assert out_one.shape == (1, 19, 64, 64)
    # the setting does the same as the context manager
    torch.testing.assert_close(infer(memory_model, x, target_bn=True).logits, out_tbn, rtol=0, atol=0)
    assert not bn.training and bn.track_running_stats


def test_recompute_bn_statistics_averages_batches_and_keeps_the_model_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 4, 1),
                          nn.BatchNorm2d(4))
    model[1].running_mean.fill_(100.0)  # stale statistics, far from what the weights produce
    batches = [torch.randn(2, 3, 8, 8) * (i + 1) + i for i in range(3)]
    assert recompute_bn_statistics(model, batches) == 3
    first = [model[0](x) for x in batches]  # the first BN's inputs
    torch.testing.assert_close(model[1].running_mean, torch.stack([f.mean((0, 2, 3)) for f in first]).mean(0))
    torch.testing.assert_close(model[1].running_var, torch.stack([f.var((0, 2, 3)) for f in first]).mean(0))
    assert not model.training and not any(m.training for m in model) and model[1].momentum == 0.1
    # with the recomputed statistics, eval mode normalises each batch close to zero mean
    out = model[:2](torch.cat(batches))
    assert out.mean((0, 2, 3)).abs().max() < 0.5
    # nothing to average over: refused, and the statistics stay as they were
    before = model[1].running_mean.clone()
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_bn_statistics(model, [])
    assert torch.equal(model[1].running_mean, before) and model[1].momentum == 0.1


class ListDataset:
    def __init__(self, items, name="toy", split="val"):
        self.items, self.name, self.split = items, name, split

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _items(n=5, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        h, w = (32, 48) if i != 2 else (40, 40)  # one image of another size breaks the batch
        label = torch.from_numpy(rng.integers(0, 19, size=(h, w)))
        label[:4] = 255
        items.append({"image": torch.randn(3, h, w), "label": label})
    return items


def test_evaluate_batches_by_size_and_matches_a_manual_count():
    model = Pointwise().train()
    data = ListDataset(_items())
    res = evaluate(model, data, batch_size=3)
    manual = ConfusionMatrix()
    with torch.no_grad():
        for item in data.items:
            manual.update(model.eval()(item["image"][None]).argmax(1)[0], item["label"])
    assert np.array_equal(res.confusion.matrix, manual.matrix)
    assert res.num_images == 5 and res.dataset == "toy" and res.split == "val"
    d = res.to_dict()
    assert d["mode"] == "whole" and len(d["confusion_matrix"]) == 19 and d["num_images"] == 5


def test_evaluate_restores_training_mode_and_merges_shards():
    model = Pointwise().train()
    data = ListDataset(_items(6, seed=1))
    full = evaluate(model, data, mode="slide", crop=16, stride=12, batch_size=4, flip=True)
    assert model.training
    shards = [evaluate(model, ListDataset(data.items[:4])), evaluate(model, ListDataset(data.items[4:]))]
    merged = merge_results(shards)
    assert np.array_equal(merged.confusion.matrix, full.confusion.matrix)
    assert merged.num_images == 6 and merged.miou == pytest.approx(full.miou)
    assert full.settings.describe().startswith("sliding 16² windows, stride 12")


def test_merge_results_across_ranks_sums_counts_and_images():
    """The cross-rank merge (``reduce``: a sum over ranks) gives every rank the whole split's result."""
    model = Pointwise()
    data = ListDataset(_items(6, seed=2))
    full = evaluate(model, data)
    shards = [evaluate(model, ListDataset(data.items[r::2])) for r in range(2)]
    packed: list[torch.Tensor] = []
    merge_results([shards[1]], reduce=lambda t: packed.append(t.clone()) or t)  # rank 1's contribution
    on_rank0 = merge_results([shards[0]], reduce=lambda t: t + packed[0])
    assert np.array_equal(on_rank0.confusion.matrix, full.confusion.matrix)
    assert on_rank0.num_images == 6 and on_rank0.miou == full.miou


def test_inference_settings_validate_resolve_and_record():
    assert InferenceSettings.resolve(None, {"mode": "slide"}) == InferenceSettings(mode="slide")
    with pytest.raises(TypeError, match="unknown inference setting"):
        InferenceSettings.resolve(None, {"windows": 3})
    for bad in ({"crop": 0}, {"stride": -1}, {"batch_size": 0}, {"mode": "tiles"}, {"amp": "fp8"}):
        with pytest.raises(ConfigError):
            InferenceSettings(**bad)
    assert InferenceSettings(device=torch.device("cpu")).device == "cpu"
    # what a result records (the JSON format): unchanged by the device or the batch size
    assert list(InferenceSettings(batch_size=4, device="cpu").to_dict()) == [
        "mode", "flip", "crop", "stride", "target_bn", "amp", "pad", "description"]


def test_evaluate_rejects_bad_settings():
    with pytest.raises(ConfigError, match="mode"):
        evaluate(Pointwise(), ListDataset(_items(1)), mode="tiles")
    with pytest.raises(ConfigError, match="amp"):
        evaluate(Pointwise(), ListDataset(_items(1)), amp="fp8")


def test_evaluate_on_example_dataset_with_workers(tmp_path, memory_model):
    from pinmem.data import build_dataset
    from pinmem.data.examples import write_examples

    roots = write_examples(tmp_path, num_train=1, num_val=2, size=(96, 64), seed=0)
    ds = build_dataset("bdd100k", roots["bdd100k"], "val")
    a = evaluate(memory_model, ds, batch_size=2, num_workers=1)
    b = evaluate(memory_model, ds, batch_size=1, target_bn=False, amp="bf16")
    assert a.num_images == b.num_images == len(ds) and a.dataset == "bdd100k"
    assert a.confusion.matrix.sum() == sum(int((ds[i]["label"] < 19).sum()) for i in range(len(ds)))
    assert b.confusion.matrix.sum() == a.confusion.matrix.sum()


def test_channels_last_is_a_layout_only(memory_model):
    """``channels_last`` converts the batches (and, in evaluate, the model) to NHWC: the same logits to float
    rounding in every mode, and evaluate converts the model in place."""
    import copy

    x = torch.randn(2, 3, 64, 96)
    model = copy.deepcopy(memory_model)
    seen = []
    handle = model.backbone.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    for settings in (InferenceSettings(), InferenceSettings(mode="slide", crop=48, stride=32, flip=True)):
        plain = infer(model, x, settings, with_memory=True)
        nhwc = infer(model, x, settings, channels_last=True, with_memory=True)
        torch.testing.assert_close(nhwc.logits, plain.logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(nhwc.cosine, plain.cosine, atol=1e-4, rtol=1e-4)
    handle.remove()
    assert any(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in seen)
    assert "channels_last" not in InferenceSettings(channels_last=True).to_dict()  # changes no recorded number
    data = ListDataset(_items(4, seed=3))
    plain = evaluate(model, data, batch_size=2)
    nhwc = evaluate(model, data, batch_size=2, channels_last=True)
    conv = model.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert nhwc.miou == pytest.approx(plain.miou, abs=1e-3)
