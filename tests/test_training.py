"""The training loop: early stopping, warnings, divergence, interrupts, determinism."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmaf import MADEMoGDensity, MAFDensity
from skmaf._training import TrainingOptions, step, train_flow
from skmaf._training.loop import validation_score
from skmaf._training.options import resolve_batch_size, resolve_learning_rate
from skmaf.flows import build_maf

OPTIONS = dict(batch_size=10, learning_rate=1e-2, l2_penalty=0.0, n_iter_no_change=100, tol=0.0)


def _data(n=200, seed=0):
    return np.random.RandomState(seed).normal(size=(n, 2)) * [1.0, 3.0]


def test_early_stopping_keeps_the_best_epoch():
    # tol=0: every improvement restarts the patience, so with a constant step
    # size the fit stops exactly n_iter_no_change epochs after the best one.
    model = MAFDensity(n_transforms=2, n_hidden_units=8, learning_rate_init=3e-2,
                       learning_rate="constant", n_iter_no_change=3, tol=0,
                       random_state=0).fit(_data(100))
    assert 1 <= model.best_iter_ <= model.n_iter_ < model.max_iter
    assert model.n_iter_ - model.best_iter_ == 3
    assert len(model.loss_curve_) == len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.best_validation_score_ == model.validation_scores_[model.best_iter_ - 1]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_model_returned_is_the_best_epochs_model(ema_decay):
    """Not only the bookkeeping: the weights that training returns score the best
    validation log-likelihood, not the last epoch's."""
    generator = torch.Generator().manual_seed(0)
    z_train = torch.randn(120, 2, generator=generator)
    z_val = torch.randn(40, 2, generator=generator)
    model = build_maf(2, 2, 1, 16, generator=torch.Generator().manual_seed(0))
    options = TrainingOptions(max_iter=60, batch_size=20, learning_rate=5e-2, l2_penalty=0.0,
                              early_stopping=True, n_iter_no_change=8, tol=0.0,
                              ema_decay=ema_decay)
    result = train_flow(model, z_train, z_val, options, np.random.RandomState(0),
                        torch.device("cpu"))
    assert result.best_iter < result.n_iter  # the last epoch was not the best
    assert result.validation_scores[-1] < result.best_validation_score
    assert validation_score(model, z_train, z_val, "cpu") == pytest.approx(
        result.best_validation_score, rel=1e-6)


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

    def log_prob(self, x, context=None):
        if self.training:
            self.calls += 1
            if self.calls > self.fail_after:
                if self.failure == "nan":
                    return self.flow.log_prob(x) * torch.nan
                raise KeyboardInterrupt
        return self.flow.log_prob(x)

    def freeze_statistics(self, x, context=None, chunk_size=8192):
        self.eval()
        self.flow.freeze_statistics(x, context, chunk_size)


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
    monkeypatch.setattr("skmaf._runtime.progress._interactive", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=3, verbose=1,
                   random_state=0).fit(_data(50))
    err = capsys.readouterr().err
    assert "3/3" in err and "epoch" in err and "validation score" in err


def test_the_progress_bar_ends_where_early_stopping_stopped(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr("skmaf._runtime.progress._interactive", lambda: True)
    model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=400, n_iter_no_change=2,
                       learning_rate_init=5e-2, verbose=1, random_state=0).fit(_data(50))
    assert model.n_iter_ < 400
    last_render = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert f"{model.n_iter_}/{model.n_iter_}" in last_render and "/400" not in last_render


@pytest.mark.parametrize("estimator", [
    MADEMoGDensity(learning_rate_init=1.0, max_iter=40, random_state=0),
    MAFDensity(n_components=3, learning_rate_init=1.0, max_iter=20, random_state=0),
], ids=["MADE-MoG", "MAF-MoG"])
def test_a_fit_that_fails_without_overflowing_is_reported(estimator):
    """A step size of 1 sends a mixture to a finite but useless model (-17 nats per row
    where a Gaussian scores -4.3): said, with advice, rather than returned silently."""
    X = np.random.RandomState(0).normal(size=(500, 3))
    with pytest.warns(ConvergenceWarning, match="Training failed.*smaller learning_rate_init"):
        estimator.fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Training failed")
        estimator.set_params(learning_rate_init=1e-3, max_iter=5).fit(X)


def test_max_iter_warning_says_validation_was_still_improving():
    model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="validation log-likelihood was still improving"):
        model.fit(_data(50))


def test_silent_by_default(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=2, random_state=0).fit(_data(50))
    assert capsys.readouterr().out == ""


def test_fitted_parameters_own_their_storage():
    # Training binds them to flat tensors; a fitted model must not pickle those whole.
    model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(_data(60))
    for parameter in model.module_.parameters():
        assert parameter.untyped_storage().nbytes() == parameter.numel() * parameter.element_size()



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


@pytest.mark.parametrize("accelerate", ["1", "0"])
def test_a_conditional_flow_trains_on_its_contexts(accelerate, monkeypatch):
    """train_flow with contexts learns p(z | c): two classes one-hot coded, far apart
    in z; the trained model gives each held-out row a far higher density under its
    own class than under the other, and its validation score is that of the pairs."""
    monkeypatch.setenv("SKMAF_ACCELERATE", accelerate)
    generator = torch.Generator().manual_seed(0)

    def draw(n):
        labels = torch.randint(0, 2, (n,), generator=generator)
        z = torch.randn(n, 2, generator=generator) * 0.5 + (4.0 * labels - 2.0)[:, None]
        return z, torch.nn.functional.one_hot(labels, 2).float()

    (z_train, c_train), (z_val, c_val) = draw(400), draw(200)
    model = build_maf(2, 2, 1, 16, batch_norm=True, n_context_features=2,
                      generator=torch.Generator().manual_seed(0))
    options = TrainingOptions(max_iter=30, batch_size=50, learning_rate=1e-2, l2_penalty=0.0,
                              early_stopping=True, n_iter_no_change=30, tol=0.0)
    result = train_flow(model, z_train, z_val, options, np.random.RandomState(0),
                        torch.device("cpu"), context_train=c_train, context_val=c_val)
    model.freeze_statistics(z_train, c_train)
    with torch.no_grad():
        own = model.log_prob(z_val, c_val)
        other = model.log_prob(z_val, 1 - c_val)
    assert (own - other).min() > 5
    assert float(own.mean()) == pytest.approx(result.best_validation_score, abs=1e-4)


@pytest.mark.parametrize("n_train, expected", [(40, 40), (1_000, 100), (4_000, 100),
                                               (10_000, 250), (20_000, 500), (10**6, 500)])
def test_the_auto_batch_size_grows_with_the_data_within_its_range(n_train, expected):
    assert resolve_batch_size("auto", n_train) == expected
    assert resolve_batch_size(64, n_train) == min(64, n_train)


def test_the_auto_step_size_follows_the_square_root_of_the_batch_size():
    assert resolve_learning_rate("auto", 100) == pytest.approx(2e-3)
    assert resolve_learning_rate("auto", 400) == pytest.approx(4e-3)
    assert resolve_learning_rate(5e-4, 400) == 5e-4


class _RecordingStep:
    """A training step that records the step sizes the loop sets."""

    def __init__(self, real):
        self.real, self.learning_rates = real, []

    def __call__(self, *args):
        return self.real(*args)

    def set_learning_rate(self, learning_rate):
        self.learning_rates.append(learning_rate)
        self.real.set_learning_rate(learning_rate)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("schedule", ["adaptive", "constant"])
def test_the_adaptive_schedule_divides_the_step_size_at_two_plateaus_then_stops(
        monkeypatch, schedule):
    recorded = []

    def recording_step(*args, **kwargs):
        recorded.append(_RecordingStep(make_step(*args, **kwargs)))
        return recorded[-1]

    make_step = step.make_training_step
    monkeypatch.setattr("skmaf._training.loop.make_training_step", recording_step)
    generator = torch.Generator().manual_seed(0)
    z_train = torch.randn(200, 2, generator=generator)
    z_val = torch.randn(50, 2, generator=generator)
    options = TrainingOptions(max_iter=500, batch_size=20, learning_rate=5e-2, l2_penalty=0.0,
                              early_stopping=True, n_iter_no_change=3, tol=0.0,
                              schedule=schedule)
    result = train_flow(build_maf(2, 2, 1, 8, generator=torch.Generator().manual_seed(0)),
                        z_train, z_val, options, np.random.RandomState(0), torch.device("cpu"))
    expected = [5e-3, 5e-4] if schedule == "adaptive" else []
    np.testing.assert_allclose(recorded[0].learning_rates, expected)
    assert result.n_iter < options.max_iter
    patience = options.n_iter_no_change
    if schedule == "constant":  # the first plateau stops
        assert result.n_iter - result.best_iter == patience
    else:  # three plateaus, the last since the best epoch or since a decay after it
        assert result.n_iter > 3 * patience
        assert patience <= result.n_iter - result.best_iter <= 3 * patience


def test_the_adaptive_schedule_ends_higher_than_its_first_plateau():
    """Lowering the step size at a plateau is what the schedule is for: the
    validation score goes past the best of the large step."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=1500)
    X = np.c_[x, x**2 / 2 + 0.3 * rng.normal(size=1500)]  # a banana
    common = dict(n_transforms=2, n_hidden_units=16, learning_rate_init=1e-2, batch_size=50,
                  n_iter_no_change=3, random_state=0)
    constant = MAFDensity(learning_rate="constant", **common).fit(X)
    adaptive = MAFDensity(learning_rate="adaptive", **common).fit(X)
    # The same run up to the first plateau, then the smaller steps improve on it.
    assert adaptive.validation_scores_[:constant.n_iter_] == constant.validation_scores_
    assert adaptive.best_validation_score_ > constant.best_validation_score_


def test_the_restart_from_the_best_weights_is_the_same_with_and_without_the_accelerator(
        monkeypatch):
    """At a plateau the adaptive schedule loads the best weights into the model
    that the step trains: the accelerator's flat parameters must take them too."""
    from skmaf import _accelerated

    rng = np.random.RandomState(0)
    x = rng.normal(size=400)
    X = np.c_[x, x**2 / 2 + 0.3 * rng.normal(size=400)]
    params = dict(n_transforms=2, n_hidden_units=8, learning_rate_init=3e-2, batch_size=40,
                  n_iter_no_change=2, random_state=0)
    monkeypatch.setenv(_accelerated.SWITCH, "1")
    accelerated = MAFDensity(**params).fit(X)
    monkeypatch.setenv(_accelerated.SWITCH, "0")
    reference = MAFDensity(**params).fit(X)
    assert accelerated.n_iter_ > 3 * params["n_iter_no_change"]  # it went through restarts
    assert accelerated.n_iter_ == reference.n_iter_
    # float32 rounding differs between the two steps, and a large step size
    # carries it on; a restart that one of them missed would differ by far more.
    np.testing.assert_allclose(accelerated.validation_scores_, reference.validation_scores_,
                               rtol=5e-3)
