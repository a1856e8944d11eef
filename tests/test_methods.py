"""The training methods' gradients: second order against finite differences (float64), first order as the
sum of the meta-train and meta-test gradients, and the gradient paths Algorithm 1 prescribes."""

import pytest
import torch
import torch.nn.functional as F

from pinmem.engine.config import load_config, model_kwargs
from pinmem.engine.distributed import DistContext
from pinmem.methods import build_method
from pinmem.methods.base import forward_with, gradients, inner_lr, inner_step, split_domains
from pinmem.methods.pinmem import read_loss, update_loss
from pinmem.models import build_model
from pinmem.training.trainer import disable_dropout

SEED = 304


def _setup(method: str, *overrides: str, dtype=torch.float64):
    torch.manual_seed(0)
    cfg = load_config(None, [f"method={method}", "model.backbone=resnet18", "train.stochastic=false",
                             "meta.inner_lr_ratio=10", f"train.seed={SEED}", f"train.dtype={str(dtype)[6:]}",
                             *overrides])
    model = build_model(**model_kwargs(cfg)).to(dtype)
    disable_dropout(model)
    model.train()
    if model.memory is not None:
        model.memory.commit(F.normalize(torch.randn(19, 256, dtype=dtype), dim=1))
    g = torch.Generator().manual_seed(1)
    batch = {d: {"image": torch.randn(2, 3, 32, 32, generator=g, dtype=dtype),
                 "label": torch.randint(0, 19, (2, 32, 32), generator=g)} for d in ("gtav", "synthia")}
    return cfg, model, build_method(cfg, model, DistContext()), batch


@pytest.fixture
def smooth(monkeypatch):
    """Finite differences need a smooth function: ReLU -> softplus, max-pool -> average pool. With ReLU's kinks
    a central difference over millions of units does not converge (kinks are crossed at any step size)."""
    softplus = torch.nn.functional.softplus
    monkeypatch.setattr(torch.nn.functional, "relu", lambda x, inplace=False: softplus(x, beta=5.0))
    monkeypatch.setattr(torch, "relu", lambda x: softplus(x, beta=5.0))

    def make_smooth(model):
        model.backbone.maxpool = torch.nn.AvgPool2d(3, stride=2, padding=1)
        return model

    return make_smooth


def _meta_batches(method, batch, iteration):
    """(X_mtr, Y_mtr), (X_mte, Y_mte) as the method splits them at ``iteration``."""
    mtr, mte = split_domains(list(batch), SEED, iteration)
    return method.inputs(batch, mtr), method.inputs(batch, mte)


def _directional(model, grads_by_name, direction):
    return sum((grads_by_name[n] * direction[n]).sum() for n in direction)


def _finite_difference(objective, params, direction, eps=1e-7):
    with torch.no_grad():
        for n, p in params.items():
            p.add_(eps * direction[n])
    plus = objective().item()
    with torch.no_grad():
        for n, p in params.items():
            p.sub_(2 * eps * direction[n])
    minus = objective().item()
    with torch.no_grad():
        for n, p in params.items():
            p.add_(eps * direction[n])
    return (plus - minus) / (2 * eps)


def _random_direction(params, skip=()):
    """A random unit vector over the parameters (zero on the names in ``skip``)."""
    g = torch.Generator().manual_seed(7)
    v = {n: (torch.zeros_like(p) if n.startswith(skip) else torch.randn(p.shape, generator=g, dtype=p.dtype))
         for n, p in params.items()}
    norm = torch.sqrt(sum((t * t).sum() for t in v.values()))
    return {n: t / norm for n, t in v.items()}


def test_pinmem_second_order_equals_finite_differences(smooth):
    cfg, model, method, batch = _setup("pinmem", "meta.first_order=false")
    smooth(model)
    iteration, lr = 3, 0.01
    alpha = inner_lr(cfg, iteration, lr)
    (x_tr, y_tr), (x_te, y_te) = _meta_batches(method, batch, iteration)
    theta = method.trainable()
    M = model.memory.slots.clone()

    def theta_prime():
        out = model(x_tr, labels=y_tr)
        loss = read_loss(out, y_tr, cfg.pinmem.lambda_coh, None) + update_loss(
            out.memory_hat, model.memory.classifier, cfg.pinmem.lambda_div)
        return inner_step(theta, gradients(loss, theta, create_graph=False), alpha, first_order=True)

    frozen = method.frozen_feature(theta_prime(), x_tr)  # copy(θ'_E) at the base point: a constant

    def objective():  # L_read(X_mte, M'(θ'_U(θ)); θ'(θ)) with the frozen feature held fixed, as the method does
        tp = theta_prime()
        m_prime = method.write_with(tp, frozen, y_tr, M)
        return read_loss(forward_with(model, tp, x_te, memory=m_prime), y_te, cfg.pinmem.lambda_coh, None)

    method.step(batch, iteration, lr)
    grads = {n: p.grad.clone() for n, p in theta.items()}
    direction = _random_direction(theta, skip=("memory.classifier.",))
    analytic = _directional(model, grads, direction).item()
    numeric = _finite_difference(objective, theta, direction)
    assert analytic == pytest.approx(numeric, rel=1e-5)
    # the Hessian term matters at this α: the first-order gradient is measurably different
    _, model1, method1, _ = _setup("pinmem", "meta.first_order=true")
    smooth(model1)
    method1.step(batch, iteration, lr)
    first = _directional(model1, {n: p.grad for n, p in method1.trainable().items()}, direction).item()
    assert abs(first - numeric) > 1e-3 * abs(numeric)


def test_mldg_second_order_equals_finite_differences(smooth):
    cfg, model, method, batch = _setup("mldg", "meta.first_order=false")
    smooth(model)
    iteration, lr = 2, 0.01
    alpha = inner_lr(cfg, iteration, lr)
    (x_tr, y_tr), (x_te, y_te) = _meta_batches(method, batch, iteration)
    theta = method.trainable()

    def objective():  # L_tr(θ) + L_te(θ − α∇L_tr(θ))
        loss_tr = method.seg_loss(model(x_tr), y_tr)
        tp = inner_step(theta, gradients(loss_tr, theta, create_graph=False), alpha, first_order=True)
        return loss_tr + method.seg_loss(forward_with(model, tp, x_te), y_te)

    method.step(batch, iteration, lr)
    grads = {n: p.grad.clone() for n, p in theta.items()}
    direction = _random_direction(theta)
    assert _directional(model, grads, direction).item() == pytest.approx(
        _finite_difference(objective, theta, direction), rel=1e-5)


def test_pinmem_first_order_is_the_sum_of_both_gradients_and_g_learns_from_meta_train_only():
    cfg, model, method, batch = _setup("pinmem", "meta.first_order=true")
    iteration, lr = 5, 0.01
    alpha = inner_lr(cfg, iteration, lr)
    (x_tr, y_tr), (x_te, y_te) = _meta_batches(method, batch, iteration)
    theta = method.trainable()
    M = model.memory.slots.clone()

    out = model(x_tr, labels=y_tr)
    loss_tr = read_loss(out, y_tr, cfg.pinmem.lambda_coh, None) + update_loss(
        out.memory_hat, model.memory.classifier, cfg.pinmem.lambda_div)
    g_tr = dict(zip(theta, gradients(loss_tr, theta, create_graph=False), strict=True))
    leaves = {n: (p - alpha * g_tr[n]).detach().requires_grad_() for n, p in theta.items()}  # θ' as leaves
    m_prime = method.write_with(leaves, method.frozen_feature(leaves, x_tr), y_tr, M)
    loss_te = read_loss(forward_with(model, leaves, x_te, memory=m_prime), y_te, cfg.pinmem.lambda_coh, None)
    g_te = dict(zip(leaves, torch.autograd.grad(loss_te, list(leaves.values()), allow_unused=True), strict=True))

    method.step(batch, iteration, lr)
    for name, p in theta.items():
        expected = g_tr[name] + (0 if g_te[name] is None else g_te[name])
        torch.testing.assert_close(p.grad, expected, rtol=1e-9, atol=1e-12, msg=name)
        if name.startswith("memory.classifier."):  # G: meta-train gradient only
            assert g_te[name] is None or g_te[name].abs().max() == 0
            torch.testing.assert_close(p.grad, g_tr[name])


@pytest.mark.parametrize("first_order", [True, False])
def test_m_prime_gets_gradient_only_through_the_update_network(first_order):
    cfg, model, method, batch = _setup("pinmem", f"meta.first_order={str(first_order).lower()}")
    mtr, _ = split_domains(list(batch), SEED, 0)
    x_tr, y_tr = method.inputs(batch, mtr)
    theta = method.trainable()
    out = model(x_tr, labels=y_tr)
    loss = read_loss(out, y_tr, 0.02, None) + update_loss(out.memory_hat, model.memory.classifier, 0.2)
    tp = inner_step(theta, gradients(loss, theta, create_graph=not first_order), 0.1, first_order)
    m_prime = method.memory_for_meta_test(tp, x_tr, y_tr, model.memory.slots)
    grads = torch.autograd.grad(m_prime.pow(3).sum(), list(theta.values()), allow_unused=True)
    reached = {n for n, g in zip(theta, grads, strict=True) if g is not None and g.abs().max() > 0}
    assert reached, "M' must depend on U"
    if first_order:
        assert all(n.startswith("memory.update_net.") for n in reached), reached
    else:  # second order: U's inner step depends on everything U's gradient depends on, but not through F
        assert any(n.startswith("memory.update_net.") for n in reached)


def test_commit_writes_the_memory_in_eval_mode():
    cfg, model, method, batch = _setup("pinmem")
    before = model.memory.slots.clone()
    method.step(batch, 0, 0.01)
    assert torch.equal(model.memory.slots, before)  # the step itself never mutates M
    x_mtr, y_mtr = method._commit_batch  # the meta-train half the commit writes
    running = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}
    model.eval()
    with torch.no_grad():
        expected = model.memory.write(model.encode(x_mtr), y_mtr)
    model.train()
    method.after_step(0)
    assert not torch.equal(model.memory.slots, before)
    torch.testing.assert_close(model.memory.slots, expected, rtol=0, atol=0)  # BN with running statistics
    assert all(torch.equal(model.state_dict()[k], v) for k, v in running.items())  # eval mode: buffers untouched
    torch.testing.assert_close(model.memory.slots.norm(dim=1), torch.ones(19, dtype=torch.float64))
    assert model.training


def test_split_domains_is_deterministic_and_covers_both_roles():
    domains = ["gtav", "synthia", "idd"]
    splits = [split_domains(domains, 304, t) for t in range(60)]
    assert splits == [split_domains(domains, 304, t) for t in range(60)]
    for mtr, mte in splits:
        assert mtr and mte and sorted(mtr + mte) == sorted(domains)
    assert {len(mtr) for mtr, _ in splits} == {1, 2}
    assert {mtr[0] for mtr, _ in splits} == set(domains)
    with pytest.raises(ValueError):
        split_domains(["gtav"], 304, 0)


def test_the_temperature_reaches_the_read_and_the_cohesion_loss():
    """``pinmem.temperature`` is τ of the read softmax and of L_coh: the model is built with it, and a pinmem
    step's L_read on the meta-train batch is ``read_loss`` at that τ, not at the paper's τ = 1."""
    cfg, model, method, batch = _setup("pinmem", "pinmem.temperature=0.25")
    assert model.memory.temperature == 0.25
    (x_mtr, y_mtr), _ = _meta_batches(method, batch, 0)
    with torch.no_grad():
        out = model(x_mtr, labels=y_mtr)
    at_tau = read_loss(out, y_mtr, cfg.pinmem.lambda_coh, None, 0.25)
    at_one = read_loss(out, y_mtr, cfg.pinmem.lambda_coh, None, 1.0)
    losses = method.step(batch, 0, 0.01)
    torch.testing.assert_close(losses["read_mtr"], at_tau)
    assert abs(float(at_tau) - float(at_one)) > 1e-5  # λ1·(CE(s/τ) − CE(s)): 5e-4 here, in float64
