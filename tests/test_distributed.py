"""Data parallelism: 2 ranks × 1 image per domain compute the iteration of 1 rank × 2 images for erm, mldg and Pin the
Memory, at a BN-degenerate size; ranks draw their own noise. One ``torchrun`` launch (``tests/multirank_worker.py``,
gloo on CPU, float64) serves the two launch tests; the README's "Distributed" note states what they establish."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinmem.data.examples import write_examples
from pinmem.engine.distributed import DistContext, noise_seed

WORKER = Path(__file__).with_name("multirank_worker.py")
#: 32² crops: layer4 and F are 2×2, and the ASPP image-pooling BN normalises 2 values per channel (one per rank)
CROP = 32
#: largest relative difference (per tensor, against its largest entry) of the state and of the momentum after an
#: iteration started from the same state. erm agrees to rounding (measured ≤ 5e-14); the meta-learners' inner step
#: amplifies the rounding of single-process BN (it normalises as x·α + β, losing ε·|mean|/σ) through a Hessian of
#: ~1e6 on 2 images (measured ≤ 1.1e-9). A per-rank loss normalisation, memory write, inner gradient or BN statistic
#: gives 9e-3 to 14 (measured by breaking each).
TOLERANCE = {"erm": 1e-12, "mldg": 1e-7, "pinmem": 1e-7}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_examples(root, num_train=6, num_val=2, size=(64, 48), seed=3)
    out = tmp_path_factory.mktemp("multirank")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks on two cores: one thread each
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(WORKER), str(root), str(out), str(CROP)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("method", ["erm", "mldg", "pinmem"])
def test_an_iteration_on_two_ranks_equals_it_on_one_rank_with_twice_the_batch(launched, method):
    row = launched["equality"][method]
    tolerance = TOLERANCE[method]
    difference, where = row["init"]  # weights broadcast from rank 0; memory initialised from all ranks' images
    assert difference <= 1e-14, f"initial state differs by {difference:.3g} at {where}"
    assert len(row["state"]) == 3
    for iteration, ((state, at), (mom, mom_at)) in enumerate(zip(row["state"], row["momentum"], strict=True)):
        assert state <= tolerance, f"iteration {iteration}: state differs by {state:.3g} at {at}"
        assert mom <= tolerance, f"iteration {iteration}: momentum differs by {mom:.3g} at {mom_at}"
    assert all(row["replicas_identical"])  # the two ranks hold the same weights bit for bit


def test_ranks_draw_their_own_noise_from_identical_weights(launched):
    noise = launched["noise"]
    assert noise["identical_before"] and noise["identical_after"]
    assert noise["gumbel"]["draws"] == 2 and noise["dropout"]["draws"] == 2  # meta-train and meta-test forward
    assert noise["dropout"]["compared"] > 500
    assert not noise["gumbel"]["same_on_all_ranks"]
    assert not noise["dropout"]["same_on_all_ranks"]


def draws(context: DistContext, iteration: int) -> torch.Tensor:
    context.seed_noise(304, iteration)
    return torch.rand(8)


def test_noise_seed_is_a_function_of_seed_rank_and_iteration():
    with torch.random.fork_rng():
        rank0, rank1 = DistContext(rank=0, world_size=2), DistContext(rank=1, world_size=2)
        assert not torch.equal(draws(rank0, 5), draws(rank1, 5))
        assert not torch.equal(draws(rank0, 5), draws(rank0, 6))
        assert torch.equal(draws(rank1, 5), draws(rank1, 5))  # a resumed run draws what the uninterrupted one did
        assert noise_seed(304, 1, 5) != noise_seed(305, 1, 5)
        torch.manual_seed(0)
        expected = torch.rand(8)
        torch.manual_seed(0)
        assert torch.equal(draws(DistContext(), 5), expected)  # one rank: its stream is left alone
