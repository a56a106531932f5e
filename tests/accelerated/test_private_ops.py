"""Each private torch op is probed once, has a public fallback that computes the same,
and can be switched off; the accelerator as a whole has one switch."""

import os
import pickle

import numpy as np
import pytest
import torch

from skmaf import MAFDensity, _accelerated
from skmaf._accelerated import private_ops
from skmaf._accelerated.adam import FlatAdam, adam_update_reference
from skmaf.flows import MaskedAffineAutoregressive, build_maf

pytestmark = pytest.mark.every_path


def _inputs(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]


def test_every_op_is_listed_with_what_replaces_it():
    assert set(private_ops.PRIVATE_OPS) == {"fused_adam", "onednn_linear", "batch_norm",
                                            "threshold_backward"}
    for op in private_ops.PRIVATE_OPS.values():
        assert op.torch_name and op.used_for and op.fallback


@pytest.mark.parametrize("name", sorted(private_ops.PRIVATE_OPS))
def test_the_switch_turns_each_op_off(monkeypatch, name):
    monkeypatch.setenv(private_ops.ALL_OPS_SWITCH, "0")
    assert not private_ops.available(name)


def test_a_probe_that_raises_means_unavailable(monkeypatch):
    def broken():
        raise RuntimeError("op removed in this torch")

    op = private_ops.PRIVATE_OPS["threshold_backward"]
    monkeypatch.setitem(private_ops.PRIVATE_OPS, "threshold_backward",
                        private_ops.PrivateOp(op.torch_name, op.used_for, op.fallback, broken))
    private_ops._works.cache_clear()
    try:
        assert not private_ops.available("threshold_backward")
    finally:
        monkeypatch.undo()
        private_ops._works.cache_clear()


def test_the_batch_norm_fallback_computes_the_kernels_results():
    x, gamma, beta, grad = _inputs((50, 4), (4,), (4,), (50, 4))
    fast = private_ops.batch_norm_forward(x, gamma, beta, 1e-5, use_private=True)
    slow = private_ops.batch_norm_forward(x, gamma, beta, 1e-5, use_private=False)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    fast_grads = private_ops.batch_norm_backward(grad, x, gamma, *fast[1:], 1e-5, True)
    slow_grads = private_ops.batch_norm_backward(grad, x, gamma, *slow[1:], 1e-5, False)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # And the fallback is the derivative of the forward formula.
    x_ = x.clone().requires_grad_(True)
    gamma_, beta_ = gamma.clone().requires_grad_(True), beta.clone().requires_grad_(True)
    private_ops.batch_norm_forward(x_, gamma_, beta_, 1e-5, use_private=False)[0].mul(
        grad).sum().backward()
    for autograd, manual in zip((x_.grad, gamma_.grad, beta_.grad), slow_grads):
        torch.testing.assert_close(manual, autograd, rtol=1e-10, atol=1e-12)


def test_the_threshold_backward_fallback_computes_the_ops_result():
    grad, below = _inputs((20, 7), (20, 7))
    expected = private_ops.threshold_backward(grad, below.relu(), use_private=False)
    assert torch.equal(torch.ops.aten.threshold_backward(grad, below.relu(), 0), expected)


def test_the_adam_fallback_computes_the_fused_kernels_update(monkeypatch):
    parameter, grad = _inputs((30,), (30,))
    parameter, grad = parameter.float(), grad.float()
    results = []
    for private in ("1", "0"):
        monkeypatch.setenv(private_ops.ALL_OPS_SWITCH, private)
        p = torch.nn.Parameter(parameter.clone())
        optimizer = FlatAdam([(p, 0.1)], lr=1e-2)
        assert optimizer.fused == (private == "1" and private_ops._works("fused_adam"))
        for _ in range(5):
            p.grad = grad * p.detach()
            optimizer.step()
        results.append(p.detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)
    # And both are torch.optim.Adam's update.
    reference = torch.nn.Parameter(parameter.clone())
    optimizer = torch.optim.Adam([reference], lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        reference.grad = grad * reference.detach()
        optimizer.step()
    torch.testing.assert_close(results[1], reference.detach(), rtol=1e-6, atol=1e-7)
    assert adam_update_reference.__doc__


def _fit(X):
    return MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=3, random_state=0).fit(X)


def test_one_switch_turns_the_whole_accelerator_off(monkeypatch):
    monkeypatch.setenv(_accelerated.SWITCH, "1")
    X = np.random.RandomState(0).normal(size=(200, 3))
    accelerated = _fit(X)
    assert accelerated._scoring_flow is not None and accelerated._sampling_flow is not None
    monkeypatch.setenv(_accelerated.SWITCH, "0")
    flow = build_maf(3, 1, 1, 8)
    assert _accelerated.training_step(flow, None, 10) is None
    assert _accelerated.scoring_flow(flow) is None and _accelerated.sampling_flow(flow) is None
    assert _fit(X)._scoring_flow is None
    # The same fitted model, loaded with the accelerator off: the reference scores
    # and samples it in float64, the same as the float32 copy to its rounding.
    reference = pickle.loads(pickle.dumps(accelerated))
    assert reference._scoring_flow is None and reference._sampling_flow is None
    np.testing.assert_allclose(reference.score_samples(X), accelerated.score_samples(X),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reference.sample(50, random_state=0),
                               accelerated.sample(50, random_state=0), rtol=1e-9, atol=1e-9)


def test_a_subclass_that_changes_the_formula_is_scored_by_its_own_formula():
    """The accelerator picks its replacements by exact type: a subclass that overrides
    forward gets the reference path, never its parent's fast formula."""

    class Doubled(MaskedAffineAutoregressive):
        def forward(self, x, context=None):
            u, log_det = super().forward(x, context)
            return 2 * u, log_det + x.shape[1] * np.log(2.0)

    class DoubledMAF(MAFDensity):
        def _build_flow(self, n_features, generator, architecture):
            flow = super()._build_flow(n_features, generator, architecture)
            for k, transform in enumerate(flow.transforms):
                if type(transform) is MaskedAffineAutoregressive:
                    flow.transforms[k] = Doubled(transform.made)
            return flow

    X = np.random.RandomState(0).normal(size=(200, 2))
    model = DoubledMAF(n_transforms=1, batch_norm=False, n_hidden_units=8, max_iter=2,
                       random_state=0).fit(X)
    assert model._scoring_flow is None
    with torch.no_grad():
        z = torch.from_numpy((X[:5] - model.shift_) / model.scale_)
        expected = model.module_.log_prob(z).numpy() - np.log(model.scale_).sum()
    np.testing.assert_allclose(model.score_samples(X[:5]), expected, rtol=1e-12)


@pytest.mark.skipif(os.environ.get("SKMAF_REQUIRE_PRIVATE_OPS") != "1",
                    reason="set SKMAF_REQUIRE_PRIVATE_OPS=1 (CI does) to require them")
@pytest.mark.parametrize("name", sorted(private_ops.PRIVATE_OPS))
def test_every_private_op_works_on_the_torch_ci_pins(name, monkeypatch):
    """Where the fallbacks would hide it (correct, slower), CI still sees a torch that
    dropped or changed one of the ops: as a failure, not as a skip."""
    monkeypatch.delenv(private_ops.ALL_OPS_SWITCH, raising=False)
    monkeypatch.delenv(private_ops.ONEDNN_SWITCH, raising=False)
    assert private_ops._works(name), PRIVATE_OPS_MESSAGE.format(
        op=private_ops.PRIVATE_OPS[name].torch_name)


PRIVATE_OPS_MESSAGE = ("{op} no longer works on this torch: skmaf falls back to its public "
                       "formula; update private_ops.py or drop the op.")
