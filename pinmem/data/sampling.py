"""Multi-domain batch sampling for training (docs/method.md §6 "batch sampler").

A training *sample* takes one image from every source domain, so the domains are balanced whatever their
sizes; an iteration takes ``batch_per_domain`` samples on every rank. Everything is a pure function of
``(seed, epoch, sample index j, domain position)``:

* Domain ``d`` reads its images from an endless stream of random permutations of its indices (permutation
  ``k`` drawn from ``(seed, d, k)``); sample ``j`` of epoch ``e`` reads stream position ``e·L + j`` (``L`` the
  epoch length). A domain smaller than an epoch is cycled; a larger one is walked through without repeats
  across consecutive epochs.
* The augmentation seed of sample ``j`` of epoch ``e`` in domain ``d`` hashes ``(seed, e, j, d)``.
* An epoch has ``L // (b·W)`` iterations (the remainder is dropped); global iteration ``t`` of an epoch covers
  samples ``[t·b·W, (t+1)·b·W)`` and rank ``r`` takes the contiguous slice ``[t·b·W + r·b, t·b·W + (r+1)·b)``.

So N ranks with ``b`` each see exactly the images (and augmentations) that one rank sees with ``N·b``, the
number of DataLoader workers changes nothing, and resuming at global iteration ``k`` reproduces the batches an
uninterrupted run gives from ``k`` on.

A sample whose files cannot be read (:class:`~pinmem.errors.CorruptFileError`) follows ``on_bad_sample``:
``stop`` makes the loader yield a :class:`BadBatch` naming the file instead of the batch; ``skip`` loads
:func:`replacement_index` in its place (a pure function of the sample's seed, so resuming stays exact) and lists
the skipped file under the domain's ``"skipped"`` key of the batch.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from pinmem.errors import ConfigError, CorruptFileError

_ORDER_TAG = 0x6F72646572  # "order": keeps permutation seeds apart from augmentation seeds
_AUGMENT_TAG = 0x61756700  # "aug"
_REPLACE_TAG = 0x736B6970  # "skip"
_CACHED_PERMUTATIONS = 4
#: what a sample that cannot be read does: stop the run, or be replaced by another image of its domain
BAD_SAMPLE_POLICIES = ("stop", "skip")
#: replacement draws for one bad sample before a ``skip`` run stops anyway (most of the domain must be bad)
MAX_REPLACEMENTS = 16


@dataclass(frozen=True)
class SamplerConfig:
    """How training samples are drawn. ``iterations=None`` means an endless sampler."""

    epoch_length: int = 2975
    batch_per_domain: int = 4
    seed: int = 304
    rank: int = 0
    world_size: int = 1
    iterations: int | None = None

    def __post_init__(self) -> None:
        if self.batch_per_domain < 1 or self.world_size < 1:
            raise ConfigError(
                f"batch_per_domain and world_size must be >= 1, got {self.batch_per_domain}, {self.world_size}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank must lie in [0, {self.world_size}), got {self.rank}")
        if self.epoch_length < self.global_batch:
            raise ConfigError(
                f"epoch_length {self.epoch_length} is shorter than one global batch "
                f"(batch_per_domain {self.batch_per_domain} × world_size {self.world_size})"
            )
        if self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed}")
        if self.iterations is not None and self.iterations < 0:
            raise ConfigError(f"iterations must be >= 0 or None, got {self.iterations}")

    @property
    def global_batch(self) -> int:
        """Samples per iteration over all ranks (``b·W``)."""
        return self.batch_per_domain * self.world_size

    @property
    def iterations_per_epoch(self) -> int:
        return self.epoch_length // self.global_batch


class SampleRef(NamedTuple):
    """One training sample: sample ``sample`` of ``epoch``, with one image index and seed per domain."""

    epoch: int
    sample: int
    indices: tuple[int, ...]
    seeds: tuple[int, ...]


def augmentation_seed(seed: int, epoch: int, sample: int, domain: int) -> int:
    """The 64-bit augmentation seed of sample ``sample`` of ``epoch`` in domain position ``domain``."""
    sequence = np.random.SeedSequence(seed, spawn_key=(_AUGMENT_TAG, epoch, sample, domain))
    low, high = sequence.generate_state(2, np.uint32)
    return int(high) << 32 | int(low)


class DomainOrder:
    """The endless stream of a domain's image indices: random permutation ``k`` from ``(seed, domain, k)``."""

    def __init__(self, size: int, seed: int, domain: int) -> None:
        if size < 1:
            raise ConfigError(f"source domain {domain} has no images")
        self.size, self.seed, self.domain = size, seed, domain
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, k: int) -> np.ndarray:
        if k not in self._cache:
            if len(self._cache) >= _CACHED_PERMUTATIONS:
                self._cache.pop(next(iter(self._cache)))
            sequence = np.random.SeedSequence(self.seed, spawn_key=(_ORDER_TAG, self.domain, k))
            self._cache[k] = np.random.default_rng(sequence).permutation(self.size)
        return self._cache[k]

    def __getitem__(self, position: int) -> int:
        k, offset = divmod(position, self.size)
        return int(self.permutation(k)[offset])


class MultiDomainBatchSampler(torch.utils.data.Sampler):
    """Yields, per iteration, this rank's ``batch_per_domain`` :class:`SampleRef` s (use as ``batch_sampler``).

    Iteration starts at :attr:`start_iteration` (0, or the value restored by :meth:`load_state_dict`) and stops
    at ``config.iterations`` (never when None). Indexing is by *global* iteration, shared by all ranks.
    """

    def __init__(self, domain_sizes: Sequence[int], config: SamplerConfig | None = None) -> None:
        super().__init__()
        if not domain_sizes:
            raise ConfigError("multi-domain sampling needs at least one source domain")
        self.config = config or SamplerConfig()
        self.domain_sizes = tuple(int(n) for n in domain_sizes)
        self.orders = [DomainOrder(n, self.config.seed, d) for d, n in enumerate(self.domain_sizes)]
        self.start_iteration = 0

    # -- pure functions of the configuration ------------------------------------------------------------------
    @property
    def iterations_per_epoch(self) -> int:
        return self.config.iterations_per_epoch

    def epoch_of(self, iteration: int) -> int:
        """The epoch a global iteration belongs to."""
        return iteration // self.iterations_per_epoch

    def sample(self, epoch: int, j: int) -> SampleRef:
        """Sample ``j`` of ``epoch``: an image index and an augmentation seed for every domain."""
        position = epoch * self.config.epoch_length + j
        indices = tuple(order[position] for order in self.orders)
        seeds = tuple(augmentation_seed(self.config.seed, epoch, j, d) for d in range(len(self.orders)))
        return SampleRef(epoch, j, indices, seeds)

    def sample_range(self, iteration: int, rank: int | None = None) -> range:
        """Sample indices ``j`` (within the epoch) that ``rank`` (default: this rank) takes at ``iteration``."""
        rank = self.config.rank if rank is None else rank
        b, t = self.config.batch_per_domain, iteration % self.iterations_per_epoch
        start = t * self.config.global_batch + rank * b
        return range(start, start + b)

    def batch(self, iteration: int) -> list[SampleRef]:
        """This rank's samples at global ``iteration``."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        epoch = self.epoch_of(iteration)
        return [self.sample(epoch, j) for j in self.sample_range(iteration)]

    def batches(self, start: int | None = None, stop: int | None = None) -> Iterator[list[SampleRef]]:
        """This rank's batches for global iterations ``start`` (default :attr:`start_iteration`) up to ``stop``
        (default ``config.iterations``; endless when both are None)."""
        iteration = self.start_iteration if start is None else start
        stop = self.config.iterations if stop is None else stop
        while stop is None or iteration < stop:
            yield self.batch(iteration)
            iteration += 1

    def __iter__(self) -> Iterator[list[SampleRef]]:
        return self.batches()

    def __len__(self) -> int:
        if self.config.iterations is None:
            raise TypeError("an endless MultiDomainBatchSampler (iterations=None) has no length")
        return max(0, self.config.iterations - self.start_iteration)

    # -- resume -----------------------------------------------------------------------------------------------
    def state_dict(self, iteration: int) -> dict[str, Any]:
        """What a checkpoint needs to resume at global ``iteration`` (the next iteration to run)."""
        return {
            "iteration": int(iteration),
            "seed": self.config.seed,
            "epoch_length": self.config.epoch_length,
            "global_batch": self.config.global_batch,
            "domain_sizes": list(self.domain_sizes),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state["iteration"]``. The data order must be the same (seed, epoch length, global batch,
        domain sizes); the split of the global batch into ranks × per-rank batch may change."""
        current = self.state_dict(int(state["iteration"]))
        for key in ("seed", "epoch_length", "global_batch", "domain_sizes"):
            if key in state and _plain(state[key]) != _plain(current[key]):
                raise ConfigError(
                    f"cannot resume the data order: the checkpoint has {key}={state[key]!r}, this run {current[key]!r}"
                )
        self.start_iteration = int(state["iteration"])


def _plain(value: Any) -> Any:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else int(value)


# -- dataset side -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadBatch:
    """What the loader yields in place of a batch when a sample cannot be read and the policy is ``stop`` (or
    every replacement draw of a ``skip`` was bad too): the errors, each naming its file and what is wrong."""

    errors: tuple[str, ...]


def replacement_index(augment_seed: int, attempt: int, size: int) -> int:
    """The image read in place of a bad one (``on_bad_sample="skip"``): a pure function of the sample's
    augmentation seed (itself a hash of seed, epoch, sample and domain) and the attempt, never of RNG state."""
    sequence = np.random.SeedSequence(augment_seed, spawn_key=(_REPLACE_TAG, attempt))
    return int(sequence.generate_state(1, np.uint64)[0] % np.uint64(size))


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker ignores SIGINT, SIGTERM and SIGUSR1. The trainer's main process
    handles them (finishes the iteration, saves, shuts the workers down), so a signal sent to the whole process
    group (SLURM, Ctrl-C) neither kills a worker mid-batch nor makes it print a traceback."""
    for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class MultiDomainDataset(torch.utils.data.Dataset):
    """Wraps the ordered source datasets (``{domain: SegmentationDataset}``, first = first-listed source);
    ``dataset[ref]`` loads and augments, with the ref's seeds, one image of every domain (a :class:`BadBatch`
    when one cannot be read, see the module docstring)."""

    def __init__(self, datasets: Mapping[str, Any], on_bad_sample: str = "stop") -> None:
        if not datasets:
            raise ConfigError("multi-domain sampling needs at least one source dataset")
        if on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ConfigError(f"on_bad_sample={on_bad_sample!r} is not one of {', '.join(BAD_SAMPLE_POLICIES)}")
        self.datasets = dict(datasets)
        self.domains = list(self.datasets)
        self.on_bad_sample = on_bad_sample

    @property
    def domain_sizes(self) -> list[int]:
        return [len(ds) for ds in self.datasets.values()]

    def __getitem__(self, ref: SampleRef) -> dict[str, dict[str, Any]] | BadBatch:
        samples: dict[str, dict[str, Any]] = {}
        for position, (domain, dataset) in enumerate(self.datasets.items()):
            sample = self.load(dataset, ref, position)
            if isinstance(sample, BadBatch):
                return sample
            samples[domain] = sample
        return samples

    def load(self, dataset: Any, ref: SampleRef, position: int) -> dict[str, Any] | BadBatch:
        """Domain ``position``'s image of ``ref``; under ``skip`` a bad file is replaced (and listed under
        ``"skipped"``), under ``stop`` it gives a :class:`BadBatch`."""
        index, seed, skipped = ref.indices[position], ref.seeds[position], []
        for attempt in range(MAX_REPLACEMENTS + 1):
            try:
                sample = dataset.get(index, seed=seed)
            except CorruptFileError as err:
                if self.on_bad_sample == "stop":
                    return BadBatch((str(err),))
                skipped.append(str(err))
                index = replacement_index(seed, attempt, len(dataset))
                continue
            if skipped:
                sample["skipped"] = skipped
            return sample
        return BadBatch((f"{skipped[0]}; and the {MAX_REPLACEMENTS} replacement draws were bad too "
                         f"(the last: {skipped[-1]})",))


def collate_domains(
    items: Sequence[Mapping[str, Mapping[str, Any]] | BadBatch],
) -> dict[str, dict[str, Any]] | BadBatch:
    """Stack a list of per-sample ``{domain: sample}`` dicts into ``{domain: {"image": B×3×H×W,
    "label": B×H×W, "index": LongTensor B}}`` (plus ``"skipped"``, the errors of replaced files, when a sample was
    replaced); a :class:`BadBatch` holding every bad sample's error when there is one."""
    errors = tuple(error for item in items if isinstance(item, BadBatch) for error in item.errors)
    if errors:
        return BadBatch(errors)
    batch: dict[str, dict[str, Any]] = {}
    for domain in items[0]:
        samples = [item[domain] for item in items]
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) != 1:
            raise ValueError(
                f"domain {domain!r}: images of one batch differ in size {sorted(shapes)}; "
                "training needs a fixed crop size"
            )
        batch[domain] = {
            "image": torch.stack([s["image"] for s in samples]),
            "label": torch.stack([s["label"] for s in samples]),
            "index": torch.tensor([int(s["index"]) for s in samples], dtype=torch.long),
        }
        skipped = [error for s in samples for error in s.get("skipped", ())]
        if skipped:
            batch[domain]["skipped"] = skipped
    return batch


def build_train_loader(
    datasets: Mapping[str, Any],
    config: SamplerConfig | None = None,
    *,
    start_iteration: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    on_bad_sample: str = "stop",
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding ``{domain: {"image", "label", "index"}}`` per iteration for this rank (or a
    :class:`BadBatch`, see the module docstring). Its workers ignore the stop signals (:func:`ignore_stop_signals`).

    For a GPU (the trainer's settings): ``pin_memory`` puts the batches in page-locked memory, so that the
    trainer's ``non_blocking`` copies to the device return at once; with workers, each keeps ``prefetch_factor``
    batches ready (default 2) and the workers persist (``persistent_workers``: a loader iterated again, e.g. by a
    benchmark, does not start new processes; the trainer iterates its loader once, over all iterations)."""
    dataset = MultiDomainDataset(datasets, on_bad_sample)
    sampler = MultiDomainBatchSampler(dataset.domain_sizes, config)
    sampler.start_iteration = start_iteration
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor or 2,
                 "worker_init_fn": ignore_stop_signals}
    # the workers' base seed comes from a generator of our own, so that building the loader never advances
    # the global torch RNG (an exact resume restores that RNG and must see the same stream)
    generator = torch.Generator().manual_seed(sampler.config.seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_domains,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        **extra,
    )
