"""Faithfulness to the released code: the memory module's initialisation, BN running statistics that only the
meta-train forward updates, and one first-order step against a plain reference built from network copies."""

import copy

import pytest
import torch
import torch.nn.functional as F

from pinmem.engine.config import load_config, model_kwargs
from pinmem.engine.distributed import DistContext
from pinmem.methods import build_method
from pinmem.methods.base import inner_lr, split_domains
from pinmem.methods.pinmem import read_loss, update_loss
from pinmem.models import build_model
from pinmem.models.memory import RELEASED_BN_BIAS, RELEASED_CLASSIFIER_STD
from pinmem.training.trainer import disable_dropout

SEED = 304


def _setup(method: str, *overrides: str, dtype=torch.float64):
    torch.manual_seed(0)
    cfg = load_config(None, [f"method={method}", "model.backbone=resnet18", "train.stochastic=false",
                             f"train.seed={SEED}", f"train.dtype={str(dtype)[6:]}", *overrides])
    model = build_model(**model_kwargs(cfg)).to(dtype)
    disable_dropout(model)
    model.train()
    if model.memory is not None:
        model.memory.commit(F.normalize(torch.randn(19, 256, dtype=dtype), dim=1))
    g = torch.Generator().manual_seed(1)
    batch = {d: {"image": torch.randn(2, 3, 32, 32, generator=g, dtype=dtype),
                 "label": torch.randint(0, 19, (2, 32, 32), generator=g)} for d in ("gtav", "synthia")}
    return cfg, model, build_method(cfg, model, DistContext()), batch


def _bn_stats(model):
    return {n: b.clone() for n, b in model.named_buffers() if "running_" in n or "num_batches" in n}


def test_memory_layers_start_as_released():
    torch.manual_seed(0)
    memory = build_model(backbone="resnet18", memory=True).memory
    w = memory.classifier.weight
    assert torch.all(memory.classifier.bias == 0)
    assert abs(w.std().item() - RELEASED_CLASSIFIER_STD) < 0.1 * RELEASED_CLASSIFIER_STD
    assert w.abs().max().item() < 10 * RELEASED_CLASSIFIER_STD
    bns = [m for m in memory.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 2  # U's and the fusion's
    for bn in bns:
        assert torch.all(bn.bias == RELEASED_BN_BIAS) and torch.all(bn.weight == 1)


@pytest.mark.parametrize("method", ["pinmem", "mldg"])
@pytest.mark.parametrize("isolate", [True, False])
def test_meta_test_forward_leaves_bn_statistics_as_the_meta_train_forward_made_them(method, isolate):
    cfg, model, m, batch = _setup(method, f"meta.isolate_bn_stats={str(isolate).lower()}")
    (x_mtr, y_mtr), _ = m.meta_split(batch, 0)
    reference = copy.deepcopy(model)
    if method == "pinmem":
        reference(x_mtr, labels=y_mtr)  # Algorithm 1 lines 6-7: the one meta-train forward on θ
    else:
        reference(x_mtr)
    expected = _bn_stats(reference)
    m.step(batch, 0, lr=0.01)
    got = _bn_stats(model)
    same = all(torch.equal(got[n], expected[n]) for n in expected)
    assert same == isolate
    if not isolate:  # the meta-test forward counted a second batch
        assert int(got["backbone.bn1.num_batches_tracked"]) == 2


def _reference_first_order_step(model, cfg, batch, iteration, lr):
    """Algorithm 1 (first order) written with plain network copies, as the released code runs it: θ′ is a
    copy holding θ − α·∇ as leaf parameters, M′ is written with a frozen copy's F and θ′'s live U, the meta-test
    loss is backpropagated into θ′, and the gradient applied to θ is the sum of both."""
    theta = dict(model.named_parameters())
    mtr, mte = split_domains(list(batch), SEED, iteration)
    x_mtr = torch.cat([batch[d]["image"] for d in mtr])
    y_mtr = torch.cat([batch[d]["label"] for d in mtr])
    x_mte = torch.cat([batch[d]["image"] for d in mte])
    y_mte = torch.cat([batch[d]["label"] for d in mte])
    lam_coh, lam_div = cfg.pinmem.lambda_coh, cfg.pinmem.lambda_div

    out = model(x_mtr, labels=y_mtr)
    loss_mtr = read_loss(out, y_mtr, lam_coh, None) + update_loss(out.memory_hat, model.memory.classifier, lam_div)
    names = list(theta)
    grads = torch.autograd.grad(loss_mtr, [theta[n] for n in names], allow_unused=True)
    g_mtr = {n: (torch.zeros_like(theta[n]) if g is None else g) for n, g in zip(names, grads, strict=True)}

    alpha = inner_lr(cfg, iteration, lr)
    fast = copy.deepcopy(model)  # θ′ with buffers of its own
    with torch.no_grad():
        for n, p in fast.named_parameters():
            p.copy_(theta[n] - alpha * g_mtr[n])
    frozen = copy.deepcopy(fast)  # copy(θ′_E): no gradient
    for p in frozen.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        feature = frozen.encode(x_mtr)
    M_prime = fast.memory.write(feature, y_mtr, memory=model.memory.slots)
    out_mte = fast(x_mte, memory=M_prime)
    read_loss(out_mte, y_mte, lam_coh, None).backward()
    return {n: g_mtr[n] + (torch.zeros_like(p) if p.grad is None else p.grad)
            for n, p in fast.named_parameters()}


@pytest.mark.parametrize("iteration", [0, 3])
def test_first_order_step_equals_a_reference_built_from_network_copies(iteration):
    cfg, model, m, batch = _setup("pinmem")
    reference_model = copy.deepcopy(model)
    expected = _reference_first_order_step(reference_model, cfg, batch, iteration, lr=0.01)
    m.step(batch, iteration, lr=0.01)
    got = {n: p.grad for n, p in model.named_parameters()}
    worst = max((got[n] - expected[n]).abs().max().item() / (1e-12 + expected[n].abs().max().item())
                for n in expected if expected[n].abs().max() > 0)
    assert worst < 1e-6
    assert all(torch.all(got[n] == 0) for n in expected if torch.all(expected[n] == 0))
    for n, b in reference_model.named_buffers():  # the copies kept θ's BN statistics as the meta-train made them
        assert torch.equal(b, dict(model.named_buffers())[n]), n


def test_memory_without_meta_learning_trains_on_one_combined_batch():
    cfg, model, m, batch = _setup("pinmem", "pinmem.meta_learning=false")
    before = model.memory.slots.clone()
    losses = m.step(batch, 0, lr=0.01)
    assert set(losses) == {"read", "update"} and set(m.diagnostics) == {"read_entropy", "slot_cosine"}
    assert 0 < m.diagnostics["read_entropy"] <= torch.log(torch.tensor(19.0)) + 1e-6
    x = torch.cat([batch[d]["image"] for d in batch])
    y = torch.cat([batch[d]["label"] for d in batch])
    reference = copy.deepcopy(model)
    for p in reference.parameters():
        p.grad = None
    out = reference(x, labels=y)
    (read_loss(out, y, cfg.pinmem.lambda_coh, None)
     + update_loss(out.memory_hat, reference.memory.classifier, cfg.pinmem.lambda_div)).backward()
    for (n, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12)
    m.after_step(0)
    assert not torch.equal(model.memory.slots, before)
