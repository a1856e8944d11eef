"""What keeps the training step fast, without changing its numbers (issue 12, docs/performance.md).

- **Bit for bit**: every meta-learning step (MLDG and Pin the Memory, first and second order) gives exactly
  (``torch.equal``) the gradients, BN statistics and losses of the plain formulation it replaced — θ' = θ − α·g
  hanging off θ, the meta-test gradient backpropagated through it into ``.grad``, then ``.grad + g`` — in float32
  with Gumbel noise and dropout on, so any change of rounding or of the random stream shows.
- **No host-device synchronisation** in ``before_step``/``step``/``after_step`` of any method: no operator that makes
  the host wait for a GPU (``item``, ``nonzero``, a boolean index, ``unique``, …, seen by the profiler at the
  operator level, so also when called from C++) and no Python conversion of a tensor (``float``, ``bool``, ``if``,
  ``.tolist()``, ``.cpu()``, ``.numpy()``). The trainer converts the returned losses every ``train.log_every``
  iterations only.
- **Passes**: the number of forward and backward passes each method runs (stem max-pool calls), so that an extra
  pass cannot slip in unnoticed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from pinmem.engine.config import load_config, model_kwargs
from pinmem.engine.distributed import DistContext
from pinmem.methods import build_method
from pinmem.methods.base import (
    add_first_order_gradients,
    first_order_weights,
    forward_with,
    gradients,
    inner_lr,
    inner_step,
)
from pinmem.methods.pinmem import read_loss, update_loss
from pinmem.models import build_model

SEED = 304


def _setup(method: str, *overrides: str, dtype: torch.dtype = torch.float32, size: int = 32, domains: int = 2):
    torch.manual_seed(0)
    cfg = load_config(None, [f"method={method}", "model.backbone=resnet18", "meta.inner_lr_ratio=10",
                             f"train.seed={SEED}", f"train.dtype={str(dtype)[6:]}", *overrides])
    model = build_model(**model_kwargs(cfg)).to(dtype).train()
    if model.memory is not None:
        model.memory.commit(F.normalize(torch.randn(19, 256, dtype=dtype), dim=1))
    g = torch.Generator().manual_seed(1)
    per = 4 if domains == 1 else 2
    batch = {d: {"image": torch.randn(per, 3, size, size, generator=g, dtype=dtype),
                 "label": torch.randint(0, 19, (per, size, size), generator=g)}
             for d in ("gtav", "synthia", "idd")[:domains]}
    batch["gtav"]["label"][0, :4] = 255
    return cfg, model, build_method(cfg, model, DistContext()), batch


# ---------------------------------------------------------------------------------------------- bit for bit
def _plain_inner_step(params, grads, alpha, first_order):
    """θ' = θ − α·g as it was written before the step was optimised."""
    return {n: p - alpha * (g.detach() if first_order else g) for (n, p), g in zip(params.items(), grads, strict=True)}


def _plain_accumulate(params, grads):
    for p, g in zip(params.values(), grads, strict=True):
        p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()


def _plain_mldg_step(method, batch, iteration, lr):
    cfg, model = method.config, method.model
    first_order = cfg.meta.first_order
    (x_tr, y_tr), (x_te, y_te) = method.meta_split(batch, iteration)
    params = method.trainable()
    loss_tr = method.seg_loss(model(x_tr), y_tr)
    grads = gradients(loss_tr, params, create_graph=not first_order)
    fast = _plain_inner_step(params, grads, inner_lr(cfg, iteration, lr), first_order)
    loss_te = method.seg_loss(forward_with(model, fast, x_te, isolate_buffers=cfg.meta.isolate_bn_stats), y_te)
    if first_order:
        loss_te.backward()
        _plain_accumulate(params, grads)
    else:
        (loss_tr + loss_te).backward()
    return {"meta_train": loss_tr.detach(), "meta_test": loss_te.detach()}


def _plain_pinmem_step(method, batch, iteration, lr):
    cfg, model = method.config, method.model
    first_order, lam_coh, lam_div = cfg.meta.first_order, cfg.pinmem.lambda_coh, cfg.pinmem.lambda_div
    theta, M = method.trainable(), model.memory.slots
    (x_mtr, y_mtr), (x_mte, y_mte) = method.meta_split(batch, iteration)
    out = model(x_mtr, labels=y_mtr)
    l_read = read_loss(out, y_mtr, lam_coh, None)
    l_update = update_loss(out.memory_hat, model.memory.classifier, lam_div)
    grads = gradients(l_read + l_update, theta, create_graph=not first_order)
    theta_prime = _plain_inner_step(theta, grads, inner_lr(cfg, iteration, lr), first_order)
    M_prime = method.write_with(theta_prime, method.frozen_feature(theta_prime, x_mtr), y_mtr, M)
    out_mte = forward_with(model, theta_prime, x_mte, memory=M_prime, isolate_buffers=cfg.meta.isolate_bn_stats)
    l_mte = read_loss(out_mte, y_mte, lam_coh, None)
    l_mte.backward()
    if first_order:
        _plain_accumulate(theta, grads)
    else:
        for (name, p), g in zip(theta.items(), grads, strict=True):
            if name.startswith("memory.classifier."):
                p.grad = g.detach().clone()
    method._commit_batch = (x_mtr.detach(), y_mtr.detach())
    return {"read_mtr": l_read.detach(), "update": l_update.detach(), "read_mte": l_mte.detach()}


def _assert_identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name
        assert p.grad is None or torch.equal(p.grad, q.grad), f"gradient of {name}"
    for (name, t), u in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(t, u), name


@pytest.mark.parametrize("method,plain", [("mldg", _plain_mldg_step), ("pinmem", _plain_pinmem_step)])
@pytest.mark.parametrize("first_order", [True, False])
@pytest.mark.parametrize("iteration", [0, 3])
def test_meta_steps_equal_the_plain_formulation_bit_for_bit(method, plain, first_order, iteration):
    overrides = [f"meta.first_order={str(first_order).lower()}"]
    cfg, model, m, batch = _setup(method, *overrides)  # float32, Gumbel noise and dropout on
    reference = copy.deepcopy(model)
    m_ref = build_method(cfg, reference, DistContext())
    torch.manual_seed(11)
    got = m.step(batch, iteration, lr=0.01)
    torch.manual_seed(11)
    expected = plain(m_ref, batch, iteration, 0.01)
    _assert_identical(model, reference)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    if method == "pinmem":  # the commit (unchanged) writes the same memory
        m.after_step(iteration)
        m_ref.after_step(iteration)
        assert torch.equal(model.memory.slots, reference.memory.slots)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_weights_round_exactly_as_theta_minus_alpha_g(dtype):
    g = torch.Generator().manual_seed(5)
    params = {f"p{i}": (torch.randn(1000, generator=g, dtype=dtype) * 10.0 ** i).requires_grad_() for i in range(-3, 4)}
    params["zeros"] = torch.tensor([0.0, -0.0, 1e-30, -1e-30], dtype=dtype).requires_grad_()
    grads = [torch.randn(p.shape, generator=g, dtype=dtype) * 10.0 ** (i % 5 - 2) for i, p in
             enumerate(params.values())]
    grads[-1] = torch.tensor([0.0, 0.0, -0.0, 1e-30], dtype=dtype)
    for alpha in (0.001, 0.0025, 0.1, 1 / 3, 0.01 * 10):
        plain = _plain_inner_step(params, grads, alpha, first_order=True)
        for fast in (inner_step(params, grads, alpha, first_order=True), first_order_weights(params, grads, alpha),
                     inner_step(params, grads, alpha, first_order=False)):
            for name in params:  # bytes, not just values: -0.0 and 0.0 differ here
                assert plain[name].detach().numpy().tobytes() == fast[name].detach().numpy().tobytes(), (alpha, name)
        assert all(t.is_leaf and t.requires_grad for t in first_order_weights(params, grads, alpha).values())


def test_first_order_gradients_add_up_in_the_order_of_the_plain_step():
    g = torch.Generator().manual_seed(6)
    shapes = {"reached": (50,), "unreached": (7,), "reached_with_old": (30,), "unreached_with_old": (3,)}
    grads = [torch.randn(s, generator=g) for s in shapes.values()]
    g_mte = {n: torch.randn(s, generator=g) for n, s in shapes.items() if n.startswith("reached")}
    old = {n: torch.randn(s, generator=g) for n, s in shapes.items() if n.endswith("_with_old")}

    def run(optimised: bool) -> dict[str, torch.Tensor]:
        params = {n: torch.zeros(s, requires_grad=True) for n, s in shapes.items()}
        for n, t in old.items():
            params[n].grad = t.clone()
        if optimised:
            fast = {n: torch.zeros(s, requires_grad=True) for n, s in shapes.items()}
            for n, t in g_mte.items():
                fast[n].grad = t.clone()
            add_first_order_gradients(params, fast, grads)
        else:  # the plain step: backward adds the meta-test gradient into .grad, then .grad + g
            for n, t in g_mte.items():
                params[n].grad = t.clone() if params[n].grad is None else params[n].grad + t
            _plain_accumulate(params, grads)
        return {n: p.grad for n, p in params.items()}

    plain, optimised = run(False), run(True)
    for name in shapes:
        assert plain[name].numpy().tobytes() == optimised[name].numpy().tobytes(), name
    for grad, g_in in zip(optimised.values(), grads, strict=True):
        assert grad.data_ptr() != g_in.data_ptr()  # never the caller's tensor


# ---------------------------------------------------------------------------------------- no host-device sync
#: operators that make the host wait for the device (a value read back, or an output whose size depends on data)
SYNC_OPS = ("aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero", "aten::nonzero_static",
            "aten::unique", "aten::_unique", "aten::_unique2", "aten::unique_consecutive", "aten::unique_dim",
            "aten::masked_select", "aten::equal", "aten::allclose", "aten::bincount", "aten::histc",
            "aten::repeat_interleave", "aten::_assert_async", "aten::tolist")
#: Python conversions of a tensor, each a synchronisation on a GPU
CONVERSIONS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__complex__")


@contextmanager
def no_host_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail on any Python conversion of a tensor; yield the list the profiler's synchronising operators go to."""
    def refuse(name: str):
        def raiser(*args, **kwargs):
            raise AssertionError(f"host-device synchronisation inside the step: Tensor.{name}()")
        return raiser

    with monkeypatch.context() as patch:
        for name in CONVERSIONS:
            patch.setattr(torch.Tensor, name, refuse(name))
        found: list[str] = []
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            yield found
    found.extend(sorted({e.key for e in prof.key_averages() if e.key in SYNC_OPS}))


CASES = {
    "erm": ("erm", []),
    "ibn": ("ibn", ["model.norm=ibn"]),
    "isw": ("isw", ["model.norm=isw"]),
    "mldg 1st": ("mldg", ["meta.first_order=true"]),
    "mldg 2nd": ("mldg", ["meta.first_order=false"]),
    "pinmem 1st": ("pinmem", ["meta.first_order=true"]),
    "pinmem 2nd": ("pinmem", ["meta.first_order=false"]),
    "pinmem shared BN": ("pinmem", ["meta.isolate_bn_stats=false"]),
    "pinmem no meta": ("pinmem", ["pinmem.meta_learning=false"]),
    "pinmem one source": ("pinmem", ["ONE_SOURCE"]),
    "mldg three sources": ("mldg", ["THREE_SOURCES"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_host_device_synchronisation_inside_the_step(case, monkeypatch):
    method, overrides = CASES[case]
    domains = 1 if "ONE_SOURCE" in overrides else 3 if "THREE_SOURCES" in overrides else 2
    overrides = [o for o in overrides if o not in ("ONE_SOURCE", "THREE_SOURCES")]
    _, model, m, batch = _setup(method, *overrides, domains=domains)
    if method == "isw":  # the covariance stage's masks: the step adds the whitening loss
        with torch.no_grad():
            whitened = model(batch["gtav"]["image"]).whitening_features
        m.masks = [torch.rand(f.shape[1], f.shape[1]) > 0.5 for f in whitened]
    for iteration in (0, 1):
        with no_host_sync(monkeypatch) as found:
            m.before_step(iteration)
            losses = m.step(batch, iteration, lr=0.01)
            m.after_step(iteration)
        assert not found, f"{case}: synchronising operators in the step: {found}"
        assert losses and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in losses.values())
    assert all(np.isfinite(float(v)) for v in losses.values())  # conversions are the caller's, outside the step


def test_the_sync_guard_catches_what_it_is_for(monkeypatch):
    x = torch.randn(8)
    for sync in (lambda: x.sum().item(), lambda: float(x.sum()), lambda: bool(x.sum() > 0), lambda: x.tolist(),
                 lambda: x.cpu(), lambda: x.numpy(), lambda: int(x.argmax())):
        with pytest.raises(AssertionError, match="synchronisation"), no_host_sync(monkeypatch):
            sync()
    for sync in (lambda: x[x > 0], lambda: torch.nonzero(x), lambda: torch.unique(x),
                 lambda: torch.equal(x, x)):
        with no_host_sync(monkeypatch) as found:
            sync()
        assert found, sync


# ---------------------------------------------------------------------------------------------------- passes
@pytest.mark.parametrize("case,forwards,backwards", [
    ("erm", 1, 1),
    ("mldg 1st", 2, 2),
    ("mldg 2nd", 2, 3),  # meta-train backward with its graph kept, then one backward through both
    ("pinmem 1st", 4, 2),  # meta-train, copy(θ') for M', meta-test, and the commit's eval-mode encoder
    ("pinmem 2nd", 4, 3),
    ("pinmem no meta", 2, 1),  # one forward, and the commit
])
def test_each_method_runs_the_passes_it_needs_and_no_more(case, forwards, backwards):
    method, overrides = CASES[case]
    _, _, m, batch = _setup(method, *overrides)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        m.step(batch, 1, lr=0.01)
        m.after_step(1)
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("aten::max_pool2d_with_indices", 0) == forwards  # the ResNet stem: one per encoder pass
    assert counts.get("aten::max_pool2d_with_indices_backward", 0) == backwards
