from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pinmem.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    denormalize,
    normalize,
    resize_region,
)
from pinmem.errors import ConfigError


def scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured image and a blocky label with every class."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    label = rng.integers(0, 19, size=(height // 8 + 1, width // 8 + 1), dtype=np.uint8)
    return image, np.kron(label, np.ones((8, 8), dtype=np.uint8))[:height, :width].copy()


def ramps(height: int, width: int, step: int) -> np.ndarray:
    """Channel 0 = step·x, channel 1 = step·y, channel 2 = 77 everywhere."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([step * xs, step * ys, np.full_like(xs, 77)], axis=-1).astype(np.uint8)


def geometric_only(crop, scale_range=(0.5, 2.0), flip_p=0.5) -> TrainTransform:
    return TrainTransform(crop_size=crop, scale_range=scale_range, jitter=None, blur_sigma=None, flip_p=flip_p)


# -- alignment ------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(12, 100),
    width=st.integers(12, 100),
    crop=st.tuples(st.integers(4, 140), st.integers(4, 140)),
    low=st.floats(0.4, 2.5),
    spread=st.floats(0.0, 1.0),
    axis=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**63),
)
def test_geometry_keeps_image_and_label_aligned(height, width, crop, low, spread, axis, seed):
    """The label encodes the source x (or y) coordinate and the image a ramp of it: after rescale, crop,
    padding and flip, every labelled pixel shows the ramp value of the coordinate its label names."""
    step = 254 // max(height, width)
    image = ramps(height, width, step)
    coords = np.mgrid[0:height, 0:width][1 - axis].astype(np.uint8)  # axis 0: x, axis 1: y
    transform = geometric_only(crop, scale_range=(low, low * (1 + spread)))
    out_image, out_label = transform.augment(image, coords, seed)

    assert out_image.shape == (*crop, 3) and out_label.shape == crop
    assert out_image.dtype == np.uint8 and out_label.dtype == np.uint8
    padding = out_label == 255
    assert np.array_equal(padding, out_image[:, :, 2] == 0)  # padding is 0 in the image, 255 in the label
    assert np.abs(out_image[~padding, 2].astype(int) - 77).max(initial=0) <= 1
    # Away from the source border (where the bicubic support is clamped) the ramp is reproduced exactly:
    # value = step·(c − 0.5) at source position c, and the label is floor(c).
    margin = math.ceil(2 / low) + 2
    extent = width if axis == 0 else height
    inner = ~padding & (out_label >= margin) & (out_label < extent - margin)
    if inner.sum() == 0:
        return
    position = out_image[:, :, axis][inner] / step  # ≈ c − 0.5
    labelled = out_label[inner].astype(np.float64)
    assert np.abs(position - labelled).max() <= 0.5 + 1.5 / step


def test_region_resize_equals_full_resize_then_crop():
    image, label = scene(61, 97, seed=3)
    for scaled in [(30, 48), (61, 97), (122, 194), (90, 143)]:
        full_image = np.asarray(Image.fromarray(image).resize(scaled[::-1], Image.Resampling.BICUBIC))
        full_label = np.asarray(Image.fromarray(label).resize(scaled[::-1], Image.Resampling.NEAREST))
        for y0, y1, x0, x1 in [(0, scaled[0], 0, scaled[1]), (3, scaled[0] - 5, 7, scaled[1] // 2)]:
            part_image, part_label = resize_region(image, label, scaled, (y0, y1, x0, x1))
            diff = np.abs(part_image.astype(int) - full_image[y0:y1, x0:x1]).max()
            assert diff <= 1
            assert np.array_equal(part_label, full_label[y0:y1, x0:x1])


def test_small_image_is_padded_with_255_and_zero():
    image, label = scene(20, 30)
    transform = geometric_only(64, scale_range=(1.0, 1.0), flip_p=0.0)
    out_image, out_label = transform.augment(image, label, seed=1)
    assert out_label.shape == (64, 64)
    inside = out_label != 255
    assert inside.sum() == 20 * 30 - (label == 255).sum()
    ys, xs = np.nonzero(np.any(out_image > 0, axis=2) | inside)
    top, left = ys.min(), xs.min()
    assert np.array_equal(out_label[top : top + 20, left : left + 30], label)
    assert np.array_equal(out_image[top : top + 20, left : left + 30], image)
    outside = np.ones((64, 64), dtype=bool)
    outside[top : top + 20, left : left + 30] = False
    assert (out_label[outside] == 255).all() and (out_image[outside] == 0).all()


def test_identity_geometry_when_scale_one_and_crop_is_the_image():
    image, label = scene(40, 56)
    out_image, out_label = geometric_only((40, 56), scale_range=(1.0, 1.0), flip_p=0.0).augment(image, label, 5)
    assert np.array_equal(out_image, image) and np.array_equal(out_label, label)
    flipped_image, flipped_label = geometric_only((40, 56), (1.0, 1.0), flip_p=1.0).augment(image, label, 5)
    assert np.array_equal(flipped_image, image[:, ::-1]) and np.array_equal(flipped_label, label[:, ::-1])


# -- photometric ops ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("strong", [False, True])
def test_photometric_ops_never_change_the_label(strong):
    image, label = scene(90, 120, seed=1)
    full = TrainTransform(crop_size=48, jitter_p=1.0, strong_jitter=strong)
    geometric = geometric_only(48)
    for seed in range(8):
        full_image, full_label = full.augment(image, label, seed)
        geo_image, geo_label = geometric.augment(image, label, seed)
        assert np.array_equal(full_label, geo_label)
        assert not np.array_equal(full_image, geo_image)


def test_strong_jitter_is_the_released_always_on_jitter():
    transform = TrainTransform(strong_jitter=True)
    assert transform.jitter == (0.8, 0.8, 0.8, 0.3) and transform.jitter_p == 1.0


# -- determinism and the output contract ---------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_seeds_differ():
    image, label = scene(70, 110, seed=2)
    transform = TrainTransform(crop_size=(40, 56))
    a_image, a_label = transform(image, label, 1234)
    b_image, b_label = TrainTransform(crop_size=(40, 56))(image, label, 1234)
    assert torch.equal(a_image, b_image) and torch.equal(a_label, b_label)
    transform(image, label, 99)  # the state of earlier calls must not leak into later ones
    c_image, _ = transform(image, label, 1234)
    assert torch.equal(a_image, c_image)
    others = [transform(image, label, seed)[0] for seed in range(1, 6)]
    assert all(not torch.equal(a_image, other) for other in others)
    assert not torch.equal(transform(image, label, None)[0], transform(image, label, None)[0])


def test_output_types_and_normalisation():
    image, label = scene(50, 60)
    transform = TrainTransform(crop_size=32)
    out_image, out_label = transform(image, label, 7)
    assert out_image.shape == (3, 32, 32) and out_image.dtype == torch.float32
    assert out_label.shape == (32, 32) and out_label.dtype == torch.int64
    raw_image, raw_label = transform.augment(image, label, 7)
    assert torch.equal(out_image, normalize(raw_image)) and torch.equal(out_label, torch.from_numpy(raw_label).long())


def test_normalize_round_trip():
    image, _ = scene(9, 13)
    tensor = normalize(image)
    expected = torch.from_numpy(image).permute(2, 0, 1).double() / 255 - torch.tensor(IMAGENET_MEAN)[:, None, None]
    expected /= torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(tensor.double(), expected, atol=1e-6)
    assert np.array_equal(denormalize(tensor), image)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        TrainTransform(crop_size=0)
    with pytest.raises(ConfigError):
        TrainTransform(scale_range=(2.0, 1.0))
    with pytest.raises(ConfigError):
        TrainTransform(jitter_p=1.5)
    image, label = scene(10, 10)
    with pytest.raises(ValueError, match="label"):
        TrainTransform(crop_size=8)(image, label[:5], 0)
    with pytest.raises(ValueError, match="non-negative"):
        TrainTransform(crop_size=8)(image, label, -1)


# -- evaluation ---------------------------------------------------------------------------------------------
def test_eval_transform_without_arguments_only_normalises():
    image, label = scene(33, 47)
    out_image, out_label = EvalTransform()(image, label, None)
    assert torch.equal(out_image, normalize(image)) and np.array_equal(out_label.numpy(), label)


@pytest.mark.parametrize(
    ("size", "height", "crop", "expected"),
    [
        ((60, 100), 30, None, (30, 50)),
        ((60, 100), 90, None, (90, 150)),
        ((60, 100), 48, 48, (48, 48)),  # Mapillary-style: height then a centre square
        ((90, 30), 60, 60, (60, 60)),  # narrow image: padded left and right
        ((20, 20), None, 32, (32, 32)),
    ],
)
def test_eval_transform_sizes(size, height, crop, expected):
    image, label = scene(*size)
    out_image, out_label = EvalTransform(height=height, center_crop=crop)(image, label, None)
    assert tuple(out_image.shape) == (3, *expected) and tuple(out_label.shape) == expected
    assert set(np.unique(out_label.numpy())) <= set(np.unique(label)) | {255}


def test_eval_narrow_image_is_centred_and_padded():
    image, label = scene(90, 30)
    raw_image, raw_label = EvalTransform(height=60, center_crop=60).prepare(image, label)
    resized_image, resized_label = EvalTransform(height=60).prepare(image, label)
    assert resized_label.shape == (60, 20)
    assert np.array_equal(raw_label[:, 20:40], resized_label)
    assert np.array_equal(raw_image[:, 20:40], resized_image)
    assert (raw_label[:, :20] == 255).all() and (raw_label[:, 40:] == 255).all()
    assert (raw_image[:, :20] == 0).all() and (raw_image[:, 40:] == 0).all()


def test_eval_wide_image_is_centre_cropped():
    image, label = scene(48, 100)
    raw_image, raw_label = EvalTransform(center_crop=48).prepare(image, label)
    assert np.array_equal(raw_label, label[:, 26:74]) and np.array_equal(raw_image, image[:, 26:74])
