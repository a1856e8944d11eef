from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinmem.data.base import SegmentationDataset
from pinmem.data.sampling import (
    MultiDomainBatchSampler,
    MultiDomainDataset,
    SamplerConfig,
    augmentation_seed,
    build_train_loader,
    collate_domains,
)
from pinmem.data.transforms import TrainTransform
from pinmem.errors import ConfigError


class ArrayDataset(SegmentationDataset):
    """In-memory procedural pairs; image ``i`` is a function of (name, i) only."""

    def __init__(self, name: str, n: int, size: tuple[int, int] = (24, 32), crop: int = 16) -> None:
        self.name = name
        self.size = size
        self.files = [(Path(f"{name}/{i}.png"), Path(f"{name}/{i}_label.png")) for i in range(n)]
        self.transform = TrainTransform(crop_size=crop)

    def list_files(self, native_splits):  # required by the base class; __init__ sets the file list itself
        raise AssertionError("not called: the file list is built in __init__")

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([index, len(self.name)])
        image = rng.integers(0, 256, size=(*self.size, 3), dtype=np.uint8)
        return image, rng.integers(0, 19, size=self.size, dtype=np.uint8)


def sampler(sizes=(5, 40), **config) -> MultiDomainBatchSampler:
    return MultiDomainBatchSampler(sizes, SamplerConfig(**config))


def flatten(batches):
    return [list(batch) for batch in batches]


# -- configuration ----------------------------------------------------------------------------------------------
def test_config_validation_and_epoch_arithmetic():
    config = SamplerConfig()
    assert (config.epoch_length, config.batch_per_domain, config.seed) == (2975, 4, 304)
    assert config.iterations_per_epoch == 743  # docs/method.md §6: 743 iterations of 4 images per domain
    assert SamplerConfig(batch_per_domain=2, world_size=4).iterations_per_epoch == 371
    with pytest.raises(ConfigError):
        SamplerConfig(rank=2, world_size=2)
    with pytest.raises(ConfigError):
        SamplerConfig(epoch_length=3, batch_per_domain=4)
    with pytest.raises(ConfigError):
        MultiDomainBatchSampler([5, 0])


# -- balance ----------------------------------------------------------------------------------------------------
def test_every_iteration_has_b_images_of_every_domain():
    s = sampler((3, 17, 250), batch_per_domain=3, epoch_length=60, iterations=45)
    batches = list(s)
    assert len(batches) == len(s) == 45
    for batch in batches:
        assert len(batch) == 3
        for ref in batch:
            assert len(ref.indices) == len(ref.seeds) == 3
            assert all(0 <= i < n for i, n in zip(ref.indices, (3, 17, 250), strict=True))


def test_small_domain_is_used_near_uniformly_over_an_epoch():
    s = sampler((7, 1000), batch_per_domain=2, epoch_length=150)
    for epoch in range(3):
        iterations = range(epoch * 75, (epoch + 1) * 75)
        counts = Counter(ref.indices[0] for it in iterations for ref in s.batch(it))
        assert set(counts) == set(range(7))
        assert max(counts.values()) - min(counts.values()) <= 2
        assert all(ref.epoch == epoch for ref in s.batch(iterations[0]))


def test_large_domain_does_not_repeat_before_it_is_exhausted():
    s = sampler((7, 1000), batch_per_domain=2, epoch_length=150)
    used = [ref.indices[1] for it in range(450) for ref in s.batch(it)]  # 6 epochs = 900 samples
    assert len(set(used)) == len(used)


# -- determinism, ranks, resume ---------------------------------------------------------------------------------
def test_deterministic_for_a_seed_and_different_across_seeds():
    a = flatten(sampler(seed=1, iterations=20))
    assert a == flatten(sampler(seed=1, iterations=20))
    assert a != flatten(sampler(seed=2, iterations=20))
    seeds = [seed for batch in a for ref in batch for seed in ref.seeds]
    assert len(set(seeds)) == len(seeds)


def test_augmentation_seed_depends_on_every_argument():
    base = augmentation_seed(304, 1, 2, 0)
    assert base == augmentation_seed(304, 1, 2, 0)
    variants = [(305, 1, 2, 0), (304, 0, 2, 0), (304, 1, 3, 0), (304, 1, 2, 1), (304, 1, 0, 2), (304, 2, 1, 0)]
    assert len({base, *(augmentation_seed(*v) for v in variants)}) == 1 + len(variants)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=3),
    b=st.integers(1, 3),
    world=st.integers(1, 4),
    extra=st.integers(0, 9),
    seed=st.integers(0, 2**32),
)
def test_n_ranks_with_b_equal_one_rank_with_n_times_b(sizes, b, world, extra, seed):
    epoch_length = b * world * 3 + extra
    single = sampler(sizes, batch_per_domain=b * world, epoch_length=epoch_length, seed=seed)
    ranks = [
        sampler(sizes, batch_per_domain=b, world_size=world, rank=r, epoch_length=epoch_length, seed=seed)
        for r in range(world)
    ]
    assert single.iterations_per_epoch == ranks[0].iterations_per_epoch
    for iteration in range(2 * single.iterations_per_epoch + 1):
        combined = [ref for rank in ranks for ref in rank.batch(iteration)]
        assert combined == single.batch(iteration)


def test_resume_gives_the_batches_of_an_uninterrupted_run():
    full = flatten(sampler(iterations=30, epoch_length=20, batch_per_domain=2))
    resumed = sampler(iterations=30, epoch_length=20, batch_per_domain=2)
    resumed.load_state_dict(sampler(epoch_length=20, batch_per_domain=2).state_dict(13))
    assert len(resumed) == 17
    assert flatten(resumed) == full[13:]
    assert flatten(resumed.batches(5, 9)) == full[5:9]
    # the same global batch split over two ranks resumes too
    halves = [sampler(iterations=30, epoch_length=20, batch_per_domain=1, world_size=2, rank=r) for r in (0, 1)]
    for half in halves:
        half.load_state_dict({"iteration": 13, "seed": 304, "epoch_length": 20, "global_batch": 2})
    assert [a + b for a, b in zip(flatten(halves[0]), flatten(halves[1]), strict=True)] == full[13:]


def test_resume_refuses_a_different_data_order():
    state = sampler(epoch_length=20, batch_per_domain=2).state_dict(4)
    for other in (sampler(epoch_length=20, batch_per_domain=2, seed=1), sampler(epoch_length=20), sampler((5, 41))):
        with pytest.raises(ConfigError, match="cannot resume"):
            other.load_state_dict(state)


def test_endless_sampler():
    s = sampler()
    with pytest.raises(TypeError):
        len(s)
    batches = list(itertools.islice(iter(s), 800))
    assert batches[-1] == s.batch(799) and batches[-1][0].epoch == 1


# -- dataset, collate and DataLoader ------------------------------------------------------------------------------
def two_domains() -> dict[str, ArrayDataset]:
    return {"gtav": ArrayDataset("gtav", 9), "synthia": ArrayDataset("synthia", 4, size=(20, 28))}


def test_collated_batch_layout():
    datasets = two_domains()
    dataset = MultiDomainDataset(datasets)
    s = MultiDomainBatchSampler(dataset.domain_sizes, SamplerConfig(batch_per_domain=3, epoch_length=12))
    batch = collate_domains([dataset[ref] for ref in s.batch(0)])
    assert list(batch) == ["gtav", "synthia"]
    for domain, ds in datasets.items():
        assert batch[domain]["image"].shape == (3, 3, 16, 16) and batch[domain]["image"].dtype == torch.float32
        assert batch[domain]["label"].shape == (3, 16, 16) and batch[domain]["label"].dtype == torch.int64
        position = list(datasets).index(domain)
        refs = s.batch(0)
        assert batch[domain]["index"].tolist() == [ref.indices[position] for ref in refs]
        expected = ds.get(refs[1].indices[position], seed=refs[1].seeds[position])
        assert torch.equal(batch[domain]["image"][1], expected["image"])


def loader_batches(num_workers: int, **config) -> list[dict[str, dict[str, torch.Tensor]]]:
    loader = build_train_loader(two_domains(), SamplerConfig(**config), num_workers=num_workers)
    return list(loader)


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert list(x) == list(y)
        for domain in x:
            for key in ("image", "label", "index"):
                assert torch.equal(x[domain][key], y[domain][key]), (domain, key)


def test_worker_count_does_not_change_the_batches():
    config = {"batch_per_domain": 2, "epoch_length": 8, "iterations": 6}
    assert_same_batches(loader_batches(0, **config), loader_batches(2, **config))


def test_loader_ranks_and_resume():
    config = {"epoch_length": 8, "iterations": 6}
    one = loader_batches(0, batch_per_domain=4, **config)
    ranks = [loader_batches(0, batch_per_domain=2, world_size=2, rank=r, **config) for r in (0, 1)]
    for k, batch in enumerate(one):
        for domain in batch:
            for key in ("image", "label", "index"):
                joined = torch.cat([ranks[0][k][domain][key], ranks[1][k][domain][key]])
                assert torch.equal(batch[domain][key], joined)
    resumed = build_train_loader(two_domains(), SamplerConfig(batch_per_domain=4, **config), start_iteration=4)
    assert_same_batches(list(resumed), one[4:])
