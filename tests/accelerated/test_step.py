"""The accelerated training step gives the reference step's update, and its parts work."""

import warnings

import numpy as np
import pytest
import torch

from skmaf import MAFDensity, RealNVPDensity, _accelerated
from skmaf._accelerated.flat_parameters import FlatParameters
from skmaf._accelerated.step import AcceleratedStep
from skmaf._training import TrainingOptions
from skmaf._training.step import ReferenceStep
from skmaf.flows import MaskedLinear, build_made_mog, build_maf, build_realnvp

pytestmark = pytest.mark.every_path


def _data(n, seed=0):
    return np.random.RandomState(seed).normal(size=(n, 2)) * [1.0, 3.0]


def _has_cxx_compiler():
    import shutil

    return any(shutil.which(name) for name in ("g++", "clang++", "c++"))


@pytest.mark.skipif(not _has_cxx_compiler(), reason="torch.compile needs a C++ compiler")
def test_compiled_training_trains_the_same_model(monkeypatch):
    """compile=True runs the same loss and optimiser: the same model up to the
    rounding of fused kernels. (Real NVP: a Gaussian MAF does not compile.)"""
    monkeypatch.setenv(_accelerated.SWITCH, "1")
    params = dict(n_transforms=2, n_hidden_layers=2, n_hidden_units=16, max_iter=3,
                  batch_size=32, random_state=0)
    X = _data(150)
    eager = RealNVPDensity(**params).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = RealNVPDensity(**params, compile=True).fit(X)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(compiled.score_samples(X), eager.score_samples(X),
                               rtol=1e-3, atol=1e-3)


def test_failed_compilation_falls_back_to_eager_training(monkeypatch):
    monkeypatch.setenv(_accelerated.SWITCH, "1")  # compile=True is the accelerator's
    def unavailable(function, **kwargs):
        def fail(*args):
            raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")
        return fail

    monkeypatch.setattr(torch, "compile", unavailable)
    params = dict(n_transforms=2, n_hidden_units=8, max_iter=3, random_state=0)
    with pytest.warns(UserWarning, match="torch.compile failed .*no working C\\+\\+ compiler"):
        fallback = RealNVPDensity(**params, compile=True).fit(_data(80))
    eager = RealNVPDensity(**params).fit(_data(80))
    np.testing.assert_array_equal(fallback.score_samples(_data(20, 1)),
                                  eager.score_samples(_data(20, 1)))


def test_a_gaussian_maf_trains_by_hand_written_backward_even_with_compile(monkeypatch):
    def must_not_compile(function, **kwargs):
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(torch, "compile", must_not_compile)
    params = dict(n_transforms=2, n_hidden_units=8, max_iter=3, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = MAFDensity(**params, compile=True).fit(_data(80))
    assert not [w for w in caught if "compile" in str(w.message)]
    eager = MAFDensity(**params).fit(_data(80))
    np.testing.assert_array_equal(compiled.score_samples(_data(20, 1)),
                                  eager.score_samples(_data(20, 1)))


def test_each_architecture_gets_its_own_compiled_loss():
    """torch gives up compiling a function after 8 architectures; skmaf compiles a
    copy per architecture, and reuses it for refits of the same one."""
    from skmaf._accelerated.step import _compiled_loss_for

    def flow(n_units):
        return build_maf(2, 1, 1, n_units, generator=torch.Generator().manual_seed(0))

    first = _compiled_loss_for(flow(8))
    assert _compiled_loss_for(flow(8)) is first
    others = [_compiled_loss_for(flow(n_units)) for n_units in range(9, 19)]
    codes = {id(getattr(f, "_torchdynamo_orig_callable", f).__code__) for f in [first, *others]}
    assert len(codes) == 11


def test_flat_parameters_are_views_until_released():
    flow = build_maf(3, 2, 1, 8, generator=torch.Generator().manual_seed(0))
    parameters = list(flow.parameters())
    values = [p.detach().clone() for p in parameters]
    flat = FlatParameters([parameters[:3], parameters[3:]])
    assert [f.numel() for f in flat.flat] == [sum(p.numel() for p in parameters[:3]),
                                              sum(p.numel() for p in parameters[3:])]
    with torch.no_grad():
        flat.flat[0].add_(1.0)  # what Adam does
    assert torch.equal(parameters[0], values[0] + 1) and torch.equal(parameters[3], values[3])
    flat.gradients[parameters[4]].fill_(2.0)
    start = parameters[3].numel()
    assert torch.all(flat.flat[1].grad[start:start + parameters[4].numel()] == 2.0)

    flat.release()
    for index, (p, value) in enumerate(zip(parameters, values)):
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
        assert torch.equal(p, value + 1 if index < 3 else value)


def test_gather_gradients_copies_autograd_gradients_and_zero_fills_missing_ones():
    flow = build_maf(2, 1, 1, 4, batch_norm=False, generator=torch.Generator().manual_seed(0))
    parameters = list(flow.parameters())
    flat = FlatParameters([parameters])
    flow.log_prob(torch.randn(5, 2)).sum().backward()
    parameters[-1].grad = None
    flat.flat[0].grad.fill_(float("nan"))
    flat.gather_gradients()
    expected = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.reshape(-1)
                          for p in parameters])
    assert torch.equal(flat.flat[0].grad, expected)


def _off_initial_values(flow):
    # Off its initial values, batch norm leaves no gradient that is zero in exact
    # arithmetic (the last layer's d/dbeta is beta itself): Adam would turn such a
    # gradient's rounding into steps of the full learning rate.
    with torch.no_grad():
        for name, parameter in flow.named_parameters():
            if name.endswith(("log_gamma", "beta")):
                parameter.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    return flow


BUILDS = {
    "MAF": lambda: build_maf(4, 2, 2, 16, generator=torch.Generator().manual_seed(0)),
    "MAF-no-BN": lambda: build_maf(4, 2, 2, 16, batch_norm=False,
                                   generator=torch.Generator().manual_seed(0)),
    "MAF-MoG": lambda: build_maf(4, 2, 1, 16, n_components=3,
                                 generator=torch.Generator().manual_seed(0)),
    "MADE-MoG": lambda: build_made_mog(4, 1, 16, 3, generator=torch.Generator().manual_seed(0)),
    "RealNVP": lambda: build_realnvp(4, 2, 1, 16, generator=torch.Generator().manual_seed(0)),
}
OPTIONS = TrainingOptions(max_iter=1, batch_size=64, learning_rate=1e-2, l2_penalty=1e-2,
                          early_stopping=False, n_iter_no_change=1, tol=0.0)


@pytest.mark.parametrize("name", BUILDS)
def test_the_accelerated_step_gives_the_reference_update(name):
    """Ten steps of the accelerated step (the hand-written backward pass for a MAF or
    MAF MoG, flat Adam for all) and of the reference (autograd and torch.optim.Adam) reach the
    same parameters; the masked-out weights stay exactly zero."""
    flows = [_off_initial_values(BUILDS[name]().double().train()) for _ in range(2)]
    accelerated = AcceleratedStep(flows[0], OPTIONS, 64)
    reference = ReferenceStep(flows[1], OPTIONS, 64)
    assert (accelerated._manual is not None) == (name in ("MAF", "MAF-no-BN", "MAF-MoG"))
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        x = torch.randn(64, 4, generator=generator, dtype=torch.float64) * 2
        torch.testing.assert_close(accelerated(x), reference(x), rtol=1e-10, atol=0)
    accelerated.close()
    for (name_, a), b in zip(flows[0].named_parameters(), flows[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9, msg=name_)
    for layer in flows[0].modules():
        if isinstance(layer, MaskedLinear):
            assert torch.all(layer.weight[layer.mask == 0] == 0)


@pytest.mark.parametrize("first, second", [(AcceleratedStep, ReferenceStep),
                                           (ReferenceStep, AcceleratedStep)])
def test_adam_state_carries_over_between_the_two_steps(first, second):
    """partial_fit keeps Adam's state by parameter name: a stream continues the same
    way whichever step ran before (the accelerator may be switched between calls)."""
    flows = [BUILDS["MAF"]().double().train() for _ in range(2)]
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(64, 4, generator=generator, dtype=torch.float64) for _ in range(6)]
    # One stream throughout, against one that changes step after three batches.
    whole = first(flows[0], OPTIONS, 64)
    for x in batches:
        whole(x)
    whole.close()
    before = first(flows[1], OPTIONS, 64)
    for x in batches[:3]:
        before(x)
    state = before.optimizer_state()
    before.close()
    after = second(flows[1], OPTIONS, 64)
    after.load_optimizer_state(state)
    for x in batches[3:]:
        after(x)
    after.close()
    assert set(state) == {name for name, _ in flows[1].named_parameters()}
    assert all(float(entry["step"]) == 3 for entry in state.values())
    for a, b in zip(flows[0].parameters(), flows[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
