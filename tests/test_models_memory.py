"""The memory module (docs/method.md §3): write, read, gradient paths, determinism, initialisation, state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from pinmem.errors import PinmemError
from pinmem.models import PinMemory, build_model, class_sums, label_weights, write_memory
from pinmem.models.losses import divergence_loss

N, C = 5, 8


def _labels(b: int, h: int, w: int, n: int = N, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n, (b, h, w), generator=g)
    y[torch.rand(b, h, w, generator=g) < 0.2] = 255
    y[:, :, :3] = n - 1
    y[y == 1] = 0  # class 1 never appears
    return y


def _naive_weights(labels: torch.Tensor, n: int, size: tuple[int, int]) -> torch.Tensor:
    lab = labels.clone()
    lab[(lab < 0) | (lab >= n)] = n
    onehot = F.one_hot(lab, n + 1).permute(0, 3, 1, 2).float()
    return F.interpolate(onehot, size=size, mode="bilinear", align_corners=True)[:, :n]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40), st.integers(1, 12), st.integers(1, 12))
def test_label_weights_equal_interpolated_one_hot(b: int, h: int, w: int, oh: int, ow: int) -> None:
    labels = _labels(b, h, w, seed=h * 41 + w)
    got = label_weights(labels, N, (oh, ow))
    assert torch.allclose(got, _naive_weights(labels, N, (oh, ow)), atol=1e-5)


def test_write_equals_naive_masked_average() -> None:
    torch.manual_seed(0)
    mem = PinMemory(N, C).eval()
    memory = F.normalize(torch.randn(N, C), dim=1)
    feature = torch.randn(3, C, 6, 7)
    labels = _labels(3, 23, 27)
    got = mem.write(feature, labels, memory)

    z = mem.update_net(feature)
    weights = _naive_weights(labels, N, (6, 7))
    expected = memory.clone()
    for n in range(N):
        num, den = torch.zeros(C), torch.tensor(0.0)
        for b in range(3):
            for i in range(6):
                for j in range(7):
                    num += weights[b, n, i, j] * z[b, :, i, j]
                    den += weights[b, n, i, j]
        if den > 0:
            expected[n] = 0.8 * memory[n] + 0.2 * num / den
        expected[n] = expected[n] / expected[n].norm().clamp_min(1e-12)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got[1], memory[1])  # absent class unchanged
    assert torch.allclose(got.norm(dim=1), torch.ones(N), atol=1e-5)


def test_write_memory_keeps_zero_rows_and_reduce_hook() -> None:
    memory = torch.zeros(N, C)
    sums, counts = torch.randn(N, C), torch.tensor([2.0, 0.0, 1.0, 0.0, 3.0])
    out = write_memory(memory, sums, counts, 0.8)
    assert torch.all(out[1] == 0) and torch.all(out[3] == 0)
    assert torch.allclose(out[0], F.normalize(sums[0], dim=0))

    calls: list[torch.Size] = []

    def double(t: torch.Tensor) -> torch.Tensor:  # two identical "ranks"
        calls.append(t.shape)
        return 2 * t

    torch.manual_seed(0)
    feature, labels = torch.randn(2, C, 4, 4), _labels(2, 16, 16)
    plain = PinMemory(N, C).eval()
    hooked = PinMemory(N, C, reduce=double).eval()
    hooked.load_state_dict(plain.state_dict())
    assert torch.allclose(plain.write(feature, labels), hooked.write(feature, labels), atol=1e-6)
    assert calls == [torch.Size([N, C]), torch.Size([N])]


def test_read_weights_sum_to_one_and_eval_is_deterministic() -> None:
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", memory=True, num_classes=N)
    model.memory.commit(F.normalize(torch.randn(N, 256), dim=1))
    x = torch.randn(2, 3, 64, 64)
    model.train()
    a, b = model(x), model(x)
    assert torch.allclose(a.read_weights.sum(1), torch.ones(1), atol=1e-5)
    assert not torch.allclose(a.read_weights, b.read_weights)  # Gumbel noise while training
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.read_weights, torch.softmax(a.cosine, 1))
    model.memory.gumbel_eval = True  # the released code's behaviour
    with torch.no_grad():
        assert not torch.equal(model(x).logits, model(x).logits)
    model.memory.gumbel_eval, model.memory.stochastic = False, False
    model.train()
    assert torch.allclose(model(x).read_weights, torch.softmax(model(x).cosine, 1))


def test_read_detaches_memory_when_writing_and_write_trains_update_network() -> None:
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", memory=True, num_classes=N).train()
    memory = F.normalize(torch.randn(N, 256), dim=1).requires_grad_()
    x, y = torch.randn(2, 3, 64, 64), _labels(2, 64, 64)
    out = model(x, labels=y, memory=memory)
    out.logits.sum().backward(retain_graph=True)
    assert memory.grad is None  # the read used the detached memory
    assert all(p.grad is None for p in model.memory.update_net.parameters())  # U is not on the read path
    divergence_loss(out.memory_hat, model.memory.classifier).backward()
    assert model.memory.update_net.conv.weight.grad.abs().sum() > 0  # the write sends gradient through U
    assert model.memory.classifier.weight.grad.abs().sum() > 0

    # without a write in the pass, reading with an explicit memory (M' in meta-test) sends gradient into it
    m_prime = F.normalize(torch.randn(N, 256), dim=1).requires_grad_()
    model(x, memory=m_prime).logits.sum().backward()
    assert m_prime.grad is not None and m_prime.grad.abs().sum() > 0


def test_write_returns_value_and_commit_and_state_dict() -> None:
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", memory=True, num_classes=N).train()
    before = model.memory.slots.clone()
    out = model(torch.randn(2, 3, 64, 64), labels=_labels(2, 64, 64))
    assert torch.equal(model.memory.slots, before)  # the write did not mutate the buffer
    assert out.memory_hat.requires_grad
    model.memory.commit(out.memory_hat)
    assert torch.equal(model.memory.slots, out.memory_hat.detach())
    state = model.state_dict()
    assert "memory.slots" in state and "memory.slots" not in dict(model.named_parameters())
    fresh = build_model(backbone="resnet18", memory=True, num_classes=N)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory.slots, out.memory_hat.detach())


def test_initialisation_accumulate_then_finalise() -> None:
    torch.manual_seed(0)
    mem = PinMemory(N, C)
    feats = [torch.randn(2, C, 4, 5) for _ in range(3)]
    labs = [_labels(2, 12, 15, seed=s) for s in range(3)]
    for f, y in zip(feats, labs, strict=True):
        mem.init_accumulate(f, y)
    seen: list[torch.Tensor] = []
    counts = mem.init_finalize(reduce=lambda t: seen.append(t) or t)
    assert len(seen) == 2
    num, den = torch.zeros(N, C), torch.zeros(N)
    for f, y in zip(feats, labs, strict=True):
        w = _naive_weights(y, N, (4, 5))
        num += torch.einsum("bnhw,bchw->nc", w, F.normalize(f, dim=1))
        den += w.sum((0, 2, 3))
    assert torch.allclose(counts, den, atol=1e-4)
    expected = F.normalize(num / den.clamp_min(1e-12)[:, None], dim=1)
    expected[1] = 0  # never seen
    assert torch.allclose(mem.slots, expected, atol=1e-5)
    with pytest.raises(PinmemError):
        mem.init_finalize()


def test_class_sums_are_additive_over_batches() -> None:
    torch.manual_seed(0)
    z, y = torch.randn(4, C, 5, 5), _labels(4, 20, 20)
    s_all, c_all = class_sums(z, y, N)
    s_a, c_a = class_sums(z[:2], y[:2], N)
    s_b, c_b = class_sums(z[2:], y[2:], N)
    assert torch.allclose(s_all, s_a + s_b, atol=1e-5) and torch.allclose(c_all, c_a + c_b)


def test_second_order_through_functional_call() -> None:
    """θ' = θ − α∇L(θ) and a meta-test loss on θ' with M' differentiate back to θ (docs/method.md §5, second order)."""
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", memory=True, num_classes=N, memory_stochastic=False).train()
    params = dict(model.named_parameters())
    x, y = torch.randn(2, 3, 32, 32), _labels(2, 32, 32)
    out = functional_call(model, params, (x,), {"labels": y})
    inner = out.logits.mean() + divergence_loss(out.memory_hat, model.memory.classifier)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
    fast = {k: p - 0.01 * g if g is not None else p for (k, p), g in zip(params.items(), grads, strict=True)}
    m_prime = functional_call(model, fast, (x,), {"labels": y}).memory_hat
    outer = functional_call(model, fast, (x,), {"memory": m_prime}).logits.pow(2).mean()
    g_update = torch.autograd.grad(outer, params["memory.update_net.conv.weight"])[0]
    assert torch.isfinite(g_update).all() and g_update.abs().sum() > 0


def test_bf16_autocast_keeps_the_write_in_float32() -> None:
    model = build_model(backbone="resnet18", memory=True, num_classes=N).train()
    x, y = torch.randn(2, 3, 32, 32), _labels(2, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, labels=y)
    assert out.memory_hat.dtype == torch.float32
    norms = out.memory_hat.norm(dim=1)  # written rows are unit vectors, unwritten ones stay zero
    assert torch.all((norms - 1).abs().lt(1e-5) | norms.eq(0)) and norms.max() > 0
