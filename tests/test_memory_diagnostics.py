"""benchmarks/memory_diagnostics.py, the evidence behind docs/results.md: its bounds and its measurements on a tiny
model, so that the script cannot rot and its numbers mean what the docs say."""

import math

import pytest
import torch
from conftest import benchmark_script

from pinmem.data import build_dataset
from pinmem.data.examples import write_examples
from pinmem.models import build_model


@pytest.fixture(scope="module")
def diagnostics():
    return benchmark_script("memory_diagnostics")


def test_entropy_floor_is_the_one_hot_read_of_cosines_in_0_1(diagnostics):
    # one-hot s: W = (e, 1, …, 1)/(e + 18); H = log(e + 18) − e/(e + 18)
    z = math.e + 18
    assert diagnostics.entropy_floor(19) == pytest.approx(math.log(z) - math.e / z, abs=1e-6)
    assert diagnostics.entropy_floor(19) == pytest.approx(2.900, abs=1e-3)
    assert diagnostics.entropy_floor(19) < math.log(19)
    assert diagnostics.entropy_floor(19, temperature=0.1) < 0.5  # a lower τ allows a peaked read


def test_slot_similarity_ignores_unseen_slots(diagnostics):
    slots = torch.zeros(5, 8)
    slots[:3] = torch.eye(8)[:3]
    got = diagnostics.slot_similarity(slots)
    assert got == {"slots_seen": 3, "mean_offdiag_cosine": 0.0, "max_offdiag_cosine": 0.0}
    slots[1] = slots[0]
    assert diagnostics.slot_similarity(slots)["max_offdiag_cosine"] == pytest.approx(1.0)


def test_diagnose_domain_on_a_tiny_model(diagnostics, tmp_path):
    torch.manual_seed(0)
    roots = write_examples(tmp_path, num_train=1, num_val=2, size=(64, 32), seed=1)
    dataset = build_dataset("cityscapes", roots["cityscapes"], "val")
    model = build_model(backbone="resnet18", memory=True, output_stride=16).eval()
    model.memory.commit(torch.nn.functional.normalize(torch.rand(19, 256), dim=1))
    got = diagnostics.diagnose_domain(model, dataset, limit=2)
    assert got["images"] == 2
    read = got["read"]
    # F and M are non-negative, so s ∈ [0, 1] and the read cannot be more peaked than the floor
    assert 0 <= got["cosine"]["min"] <= got["cosine"]["max"] <= 1 + 1e-6
    assert read["entropy_floor"] - 1e-4 <= read["entropy"] <= read["uniform_entropy"] + 1e-6
    assert read["max_weight"] <= math.e / (math.e + 18) + 1e-6
    assert read["entropy_gumbel"] < read["entropy"]  # the noise makes the read more peaked than s can
    for value in (*got["nearest_prototype"].values(), *got["memory_use"].values()):
        assert 0 <= value <= 100


def test_a_memory_of_identical_slots_is_its_own_mean_slot(diagnostics, tmp_path):
    torch.manual_seed(0)
    roots = write_examples(tmp_path, num_train=1, num_val=1, size=(64, 32), seed=2)
    dataset = build_dataset("gtav", roots["gtav"], "val")
    model = build_model(backbone="resnet18", memory=True, output_stride=16).eval()
    model.memory.commit(torch.nn.functional.normalize(torch.rand(1, 256), dim=1).expand(19, 256).contiguous())
    use = diagnostics.diagnose_domain(model, dataset, limit=1)["memory_use"]
    assert use["memory"] == pytest.approx(use["mean_slot"], abs=1e-9)
