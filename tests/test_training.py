"""The training loop: early stopping, warnings, divergence, interrupts, determinism."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmaf import MAFDensity, RealNVPDensity
from skmaf._training import TrainingOptions, train_flow
from skmaf.flows import build_maf

OPTIONS = dict(batch_size=10, learning_rate=1e-2, alpha=0.0, n_iter_no_change=100, tol=0.0)


def _data(n=200, seed=0):
    return np.random.RandomState(seed).normal(size=(n, 2)) * [1.0, 3.0]


def test_early_stopping_keeps_the_best_epoch():
    # tol=0: every improvement restarts the patience, so the fit stops exactly
    # n_iter_no_change epochs after the best one.
    model = MAFDensity(n_transforms=2, n_hidden_units=8, learning_rate_init=3e-2,
                       n_iter_no_change=3, tol=0, random_state=0).fit(_data(100))
    assert 1 <= model.best_iter_ <= model.n_iter_ < model.max_iter
    assert model.n_iter_ - model.best_iter_ == 3
    assert len(model.loss_curve_) == len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.best_validation_score_ == model.validation_scores_[model.best_iter_ - 1]


def test_without_early_stopping_there_is_no_validation():
    model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=4, early_stopping=False,
                       random_state=0)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        model.fit(_data(50))
    assert model.validation_scores_ is None and model.best_validation_score_ is None
    assert model.n_iter_ == model.best_iter_ == 4


def test_loss_curve_is_the_training_nll_in_data_units():
    X = _data(300) * 100
    model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=30, batch_norm=False,
                       early_stopping=False, random_state=0).fit(X)
    # Without batch norm, training and evaluation agree: the last epoch's loss
    # is close to the final model's NLL (the weights moved during the epoch).
    assert model.loss_curve_[-1] == pytest.approx(-model.score(X), abs=0.05)
    assert model.loss_curve_[-1] < model.loss_curve_[0]


class _FailingFlow(torch.nn.Module):
    """Wraps a flow and misbehaves from a given epoch on."""

    def __init__(self, flow, fail_from_epoch, failure, batches_per_epoch):
        super().__init__()
        self.flow = flow
        self.calls = 0
        self.fail_after = (fail_from_epoch - 1) * batches_per_epoch
        self.failure = failure

    def log_prob(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.fail_after:
                if self.failure == "nan":
                    return self.flow.log_prob(x) * torch.nan
                raise KeyboardInterrupt
        return self.flow.log_prob(x)

    def freeze_statistics(self, x, chunk_size=8192):
        self.eval()
        self.flow.freeze_statistics(x, chunk_size)


def _train(fail_from_epoch, failure, early_stopping=True):
    flow = build_maf(2, 2, 1, 8, generator=torch.Generator().manual_seed(0))
    z = torch.from_numpy(_data(100).astype(np.float32))
    model = _FailingFlow(flow, fail_from_epoch, failure, batches_per_epoch=8)
    options = TrainingOptions(max_iter=6, early_stopping=early_stopping, **OPTIONS)
    result = train_flow(model, z[:80], z[80:], options, np.random.RandomState(0),
                        torch.device("cpu"))
    return model, result


@pytest.mark.parametrize("early_stopping", [True, False])
def test_divergence_after_a_good_epoch_keeps_that_state(early_stopping):
    with pytest.warns(ConvergenceWarning, match="diverged in epoch 3"):
        model, result = _train(3, "nan", early_stopping)
    assert result.n_iter == 2 and result.best_iter <= 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    assert torch.isfinite(model.log_prob(torch.randn(5, 2))).all()


def test_divergence_in_the_first_epoch_is_an_error():
    with pytest.raises(FloatingPointError, match="learning_rate_init"):
        _train(1, "nan")


def test_keyboard_interrupt_keeps_the_best_state():
    with pytest.warns(UserWarning, match="interrupted"):
        model, result = _train(4, "interrupt")
    assert result.n_iter == 3 and 1 <= result.best_iter <= 3


def test_keyboard_interrupt_before_any_epoch_propagates():
    with pytest.raises(KeyboardInterrupt):
        _train(1, "interrupt")


def test_absurd_learning_rate_never_yields_nan_scores():
    X = _data(200)
    model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=10, learning_rate_init=1e4,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X)
        except FloatingPointError:
            assert not hasattr(model, "module_")
            return
    assert np.isfinite(model.score_samples(X)).all()


def test_same_seed_same_model_and_different_seed_different_model():
    X = _data(100)
    fit = lambda seed: MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=3,  # noqa: E731
                                  input_order="random", random_state=seed).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first, again, other = fit(7), fit(7), fit(8)
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))
    np.testing.assert_array_equal(first.sample(5, random_state=0), again.sample(5, random_state=0))
    assert first.loss_curve_ == again.loss_curve_
    assert not np.allclose(first.score_samples(X), other.score_samples(X))


def test_fit_does_not_touch_the_global_torch_or_numpy_rng():
    torch.manual_seed(0)
    np.random.seed(0)
    expected = torch.rand(2), np.random.rand(2)
    torch.manual_seed(0)
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=2, random_state=1).fit(_data(50))
    torch.testing.assert_close(torch.rand(2), expected[0])
    np.testing.assert_array_equal(np.random.rand(2), expected[1])


def test_verbose_reports_each_epoch(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=3, verbose=1,
                   random_state=0).fit(_data(50))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Iteration 1, loss = ")
    for field in ("validation score = ", "best = ", "elapsed = ", "left = <= "):
        assert field in lines[0]


def test_verbose_shows_a_progress_bar_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr("skmaf._progress._interactive", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=3, verbose=1,
                   random_state=0).fit(_data(50))
    err = capsys.readouterr().err
    assert "3/3" in err and "epoch" in err and "validation score" in err


def test_max_iter_warning_says_validation_was_still_improving():
    model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="validation log-likelihood was still improving"):
        model.fit(_data(50))


def test_silent_by_default(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=2, random_state=0).fit(_data(50))
    assert capsys.readouterr().out == ""


def _has_cxx_compiler():
    import shutil

    return any(shutil.which(name) for name in ("g++", "clang++", "c++"))


@pytest.mark.skipif(not _has_cxx_compiler(), reason="torch.compile needs a C++ compiler")
def test_compiled_training_trains_the_same_model():
    """compile=True runs the same loss and optimiser: the same model up to the
    rounding of fused kernels. (Real NVP: a Gaussian MAF does not compile.)"""
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
    from skmaf._training import _compiled_loss_for

    def flow(n_units):
        return build_maf(2, 1, 1, n_units, generator=torch.Generator().manual_seed(0))

    first = _compiled_loss_for(flow(8))
    assert _compiled_loss_for(flow(8)) is first
    others = [_compiled_loss_for(flow(n_units)) for n_units in range(9, 19)]
    codes = {id(getattr(f, "_torchdynamo_orig_callable", f).__code__) for f in [first, *others]}
    assert len(codes) == 11


def test_flat_parameters_are_views_until_released():
    from skmaf._flat_parameters import FlatParameters

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
    from skmaf._flat_parameters import FlatParameters

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


@pytest.mark.parametrize("batch_norm", [False, True])
def test_manual_backward_steps_train_like_autograd_steps(batch_norm):
    from skmaf._training import TrainingStep

    options = TrainingOptions(max_iter=1, batch_size=64, learning_rate=1e-2, alpha=1e-2,
                              early_stopping=False, n_iter_no_change=1, tol=0.0)
    flows = [build_maf(4, 2, 2, 16, batch_norm=batch_norm,
                       generator=torch.Generator().manual_seed(0)).double().train()
             for _ in range(2)]
    for flow in flows:
        # Off its initial values, batch norm leaves no gradient that is zero in
        # exact arithmetic (the last layer's d/dbeta is beta itself): Adam would
        # turn such a gradient's rounding into steps of the full learning rate.
        with torch.no_grad():
            for name, parameter in flow.named_parameters():
                if name.endswith(("log_gamma", "beta")):
                    parameter.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    manual = TrainingStep(flows[0], options, 64)
    autograd = TrainingStep(flows[1], options, 64, manual_backward=False)
    assert manual.manual_backward and not autograd.manual_backward
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        x = torch.randn(64, 4, generator=generator, dtype=torch.float64) * 2
        torch.testing.assert_close(manual(x), autograd(x), rtol=1e-10, atol=0)
    manual.close(), autograd.close()
    for (name, a), b in zip(flows[0].named_parameters(), flows[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9, msg=name)
    for transform in flows[0].transforms[::2 if batch_norm else 1]:
        for layer in transform.made.layers:
            assert torch.all(layer.weight[layer.mask == 0] == 0)


def test_fitted_parameters_own_their_storage():
    # Training binds them to flat tensors; a fitted model must not pickle those whole.
    model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(_data(60))
    for parameter in model.module_.parameters():
        assert parameter.untyped_storage().nbytes() == parameter.numel() * parameter.element_size()



def _adam_pair():
    """The same two parameter groups (one with weight decay) under torch's fused Adam and
    under FlatAdam."""
    from skmaf._adam import FlatAdam

    made = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(0)
        made.append([torch.nn.Parameter(torch.randn(50, generator=generator)),
                     torch.nn.Parameter(torch.randn(7, generator=generator))])
    reference, ours = made
    try:
        optimizer = torch.optim.Adam([{"params": [reference[0]], "weight_decay": 0.1},
                                      {"params": [reference[1]], "weight_decay": 0.0}],
                                     lr=0.01, fused=True)
    except RuntimeError:
        pytest.skip("this torch has no fused Adam on the CPU")
    return reference, optimizer, ours, FlatAdam([(ours[0], 0.1), (ours[1], 0.0)], lr=0.01)


def _step_both(reference, optimizer, ours, flat_adam, n_steps, generator):
    for _ in range(n_steps):
        for a, b in zip(reference, ours):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        optimizer.step()
        flat_adam.step()


def test_flat_adam_is_torchs_fused_adam_bit_for_bit():
    reference, optimizer, ours, flat_adam = _adam_pair()
    _step_both(reference, optimizer, ours, flat_adam, 5, torch.Generator().manual_seed(1))
    for index, (a, b) in enumerate(zip(reference, ours)):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[a][key], flat_adam.state[index][key])
            assert optimizer.state[a][key].dtype == flat_adam.state[index][key].dtype


def test_flat_adam_without_the_fused_kernel_follows_torchs_formulas(monkeypatch):
    # CPU torch before 2.4 has no fused Adam: the single-tensor update stands in.
    from skmaf import _adam

    monkeypatch.setattr(_adam, "_has_fused_kernel", lambda like: False)
    reference, optimizer, ours, flat_adam = _adam_pair()
    _step_both(reference, optimizer, ours, flat_adam, 5, torch.Generator().manual_seed(1))
    for a, b in zip(reference, ours):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_flat_adam_continues_from_a_loaded_state():
    # partial_fit hands Adam's state from one call to the next.
    from skmaf._adam import FlatAdam

    reference, optimizer, ours, flat_adam = _adam_pair()
    generator = torch.Generator().manual_seed(1)
    _step_both(reference, optimizer, ours, flat_adam, 3, generator)
    resumed = FlatAdam([(ours[0], 0.1), (ours[1], 0.0)], lr=0.01)
    resumed.load_state_dict(copy.deepcopy(flat_adam.state_dict()))
    _step_both(reference, optimizer, ours, resumed, 3, generator)
    for a, b in zip(reference, ours):
        assert torch.equal(a, b)


def test_fitting_does_not_import_torch_dynamo():
    # torch.optim would import it (about 800 modules, two seconds of a first fit).
    import subprocess
    import sys

    code = ("import sys, numpy as np, warnings; warnings.simplefilter('ignore');"
            "from skmaf import MAFDensity;"
            "MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=1, random_state=0)"
            ".fit(np.random.RandomState(0).normal(size=(40, 2)));"
            "print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
