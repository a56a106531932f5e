"""partial_fit: streaming fits over chunks, with running standardisation and batch norm."""

import copy
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import trapezoid

import skmaf._training.streaming
from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity
from skmaf.exceptions import DegenerateDataWarning, DeviceWarning
from skmaf.flows import BatchNorm

from ._common import TINY, paper_example

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _stream(model, chunks, passes=1):
    for _ in range(passes):
        for chunk in chunks:
            model.partial_fit(chunk)
    return model


def test_partial_fit_over_chunks_comes_close_to_fit_on_the_whole():
    X, _ = paper_example(600, random_state=0)
    X_test, _ = paper_example(2000, random_state=1)
    params = dict(n_transforms=2, n_hidden_units=16, batch_size=50, learning_rate_init=1e-2,
                  random_state=0)
    whole = MAFDensity(**params).fit(X).score(X_test)
    streamed = _stream(MAFDensity(**params), np.array_split(X, 10), passes=12).score(X_test)
    gaussian = stats.multivariate_normal(X.mean(0), np.cov(X.T)).logpdf(X_test).mean()
    assert streamed > gaussian + 0.25  # it learned the non-Gaussian shape...
    assert streamed == pytest.approx(whole, abs=0.05)  # ...about as well as fit (-3.56)


def test_standardisation_uses_the_moments_of_every_row_seen():
    X = np.random.RandomState(0).gamma(2.0, size=(500, 3)) * [1e-3, 1.0, 1e4] + [0, -5, 1e5]
    chunks = [X[:7], X[7:100].astype(np.float32), X[100:101 + 1], X[102:]]
    model = _stream(MAFDensity(**TINY), chunks)
    seen = np.concatenate(chunks).astype(np.float64)
    assert model.n_samples_seen_ == 500 and model.n_iter_ == 4
    np.testing.assert_allclose(model.shift_, np.mean(seen, axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.scale_**2, np.var(seen, axis=0), rtol=1e-10)


def test_log_density_is_exact_in_data_units_after_partial_fit(gaussian_data):
    """The change of variables, with derivatives taken numerically in the data's units."""
    model = _stream(MAFDensity(**TINY), np.array_split(gaussian_data * 100, 4), passes=2)
    step = 1e-4
    for row in gaussian_data[:5] * 100:
        jacobian = np.column_stack([
            (model.transform((row + step * e)[None]) - model.transform((row - step * e)[None]))[0]
            / (2 * step)
            for e in np.eye(3)
        ])
        expected = stats.norm.logpdf(model.transform(row[None])[0]).sum()
        expected += np.linalg.slogdet(jacobian)[1]
        assert model.score_samples(row[None])[0] == pytest.approx(expected, abs=1e-5)


def test_density_integrates_to_one_in_1d_after_partial_fit():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(-2, 0.5, 150), rng.normal(1.5, 1.0, 150)])[:, None] * 10
    model = _stream(MAFDensity(**TINY), np.array_split(rng.permutation(X), 5), passes=3)
    grid = np.linspace(-150, 150, 30001)
    density = np.exp(model.score_samples(grid[:, None]))
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)


def test_running_batch_norm_statistics_track_the_data(gaussian_data):
    def statistics(model):
        layers = [t for t in model.module_.transforms if isinstance(t, BatchNorm)]
        return [buffer.clone() for layer in layers for buffer in (layer.mean, layer.var)]

    model = MAFDensity(**TINY).partial_fit(gaussian_data)
    first = statistics(model)
    _stream(model, np.array_split(gaussian_data, 4), passes=10)
    assert first and not any(map(torch.equal, first, statistics(model)))
    # fit's statistics, from the whole set, give nearly the same model.
    refrozen = copy.deepcopy(model)
    z = (gaussian_data - model.shift_) / model.scale_
    refrozen.module_.freeze_statistics(torch.from_numpy(z))
    assert model.score(gaussian_data) == pytest.approx(refrozen.score(gaussian_data), abs=0.05)


@pytest.mark.parametrize("estimator", [
    MADEMoGDensity(n_components=3, n_hidden_units=8, random_state=0),
    RealNVPDensity(n_transforms=2, n_hidden_units=8, random_state=0),
    MAFDensity(n_components=3, **TINY),
], ids=lambda e: type(e).__name__)
def test_every_model_family_streams(estimator, gaussian_data):
    model = _stream(estimator, np.array_split(gaussian_data, 3), passes=2)
    assert model.n_iter_ == len(model.loss_curve_) == 6
    assert np.isfinite(model.score_samples(gaussian_data)).all()
    assert model.sample(3, random_state=0).shape == (3, 3)


def test_first_call_builds_the_model(gaussian_data):
    model = MAFDensity(**TINY).partial_fit(gaussian_data[:20])
    assert model.n_features_in_ == 3 and model.n_samples_seen_ == 20
    assert model.n_iter_ == model.best_iter_ == len(model.loss_curve_) == 1
    assert model.validation_scores_ is None and model.best_validation_score_ is None
    assert np.isfinite(model.loss_curve_[0])


def test_a_different_number_of_features_is_an_error(gaussian_data):
    model = MAFDensity(**TINY).partial_fit(gaussian_data[:, :2])
    with pytest.raises(ValueError, match="X has 3 features, but MAFDensity is expecting 2 "
                                         "features as input."):
        model.partial_fit(gaussian_data)


def test_same_seed_and_chunks_give_the_same_model(gaussian_data):
    chunks = np.array_split(gaussian_data, 3)
    first = _stream(MAFDensity(**TINY), chunks, passes=2)
    again = _stream(MAFDensity(**TINY), chunks, passes=2)
    np.testing.assert_array_equal(first.score_samples(gaussian_data),
                                  again.score_samples(gaussian_data))


def test_a_pickled_stream_continues_where_it_stopped(gaussian_data):
    chunks = np.array_split(gaussian_data, 3)
    model = _stream(MAFDensity(**TINY), chunks)
    restored = pickle.loads(pickle.dumps(model))
    _stream(model, chunks)
    _stream(restored, chunks)
    np.testing.assert_array_equal(model.score_samples(gaussian_data),
                                  restored.score_samples(gaussian_data))


def test_adams_state_is_carried_from_call_to_call(gaussian_data):
    """Each call continues Adam's moments and step count: the stream after two calls
    is not the stream whose second call starts Adam afresh."""
    params = dict(n_transforms=2, n_hidden_units=8, batch_size=20, random_state=0)
    chunks = np.array_split(gaussian_data, 2)
    carried = MAFDensity(**params).partial_fit(chunks[0]).partial_fit(chunks[1])
    n_steps = sum(max(len(chunk) // 20, 1) for chunk in chunks)
    steps = {float(entry["step"]) for entry in carried._stream.optimizer_state.values()}
    assert steps == {n_steps}
    restarted = MAFDensity(**params).partial_fit(chunks[0])
    restarted._stream = replace(restarted._stream, optimizer_state=None)
    restarted.partial_fit(chunks[1])
    assert {float(e["step"]) for e in restarted._stream.optimizer_state.values()} == {
        n_steps - max(len(chunks[0]) // 20, 1)}
    assert np.abs(carried.score_samples(gaussian_data)
                  - restarted.score_samples(gaussian_data)).max() > 1e-4


def test_a_chunk_that_moves_the_standardisation_warns(gaussian_data):
    model = MAFDensity(n_transforms=2, n_hidden_units=8, random_state=0)
    for chunk in np.array_split(gaussian_data, 3):
        model.partial_fit(chunk)
    outliers = gaussian_data[:40].copy()
    outliers[0] = 1e6
    with pytest.warns(DegenerateDataWarning, match="moved the running standardisation"):
        model.partial_fit(outliers)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        model.partial_fit(gaussian_data[40:80])  # ordinary rows: silent


def test_a_chunk_whose_variance_overflows_is_an_error_that_changes_nothing(gaussian_data):
    model = MAFDensity(n_transforms=2, n_hidden_units=8, random_state=0)
    model.partial_fit(gaussian_data)
    before = model.score_samples(gaussian_data)
    with pytest.raises(ValueError, match="too large for float64 statistics"):
        model.partial_fit(gaussian_data * 1e200)
    np.testing.assert_array_equal(model.score_samples(gaussian_data), before)


def test_fit_after_partial_fit_starts_over(gaussian_data):
    streamed_then_fitted = MAFDensity(**TINY).partial_fit(gaussian_data[:50]).fit(gaussian_data)
    fitted = MAFDensity(**TINY).fit(gaussian_data)
    np.testing.assert_array_equal(streamed_then_fitted.score_samples(gaussian_data),
                                  fitted.score_samples(gaussian_data))
    assert streamed_then_fitted.n_samples_seen_ == len(gaussian_data)


def test_partial_fit_after_fit_continues_from_the_fitted_model(gaussian_data):
    model = MAFDensity(**TINY).fit(gaussian_data)
    n_iter, loss_curve = model.n_iter_, model.loss_curve_
    model.partial_fit(gaussian_data)
    assert model.n_iter_ == n_iter + 1 and model.loss_curve_[:-1] == loss_curve
    assert model.n_samples_seen_ == 2 * len(gaussian_data)
    assert model.validation_scores_ is None


def _nan_loss(model, *args, **kwargs):
    return float("nan")


def _nan_weights(model, *args, **kwargs):
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return 0.0


@pytest.mark.parametrize("diverge", [_nan_loss, _nan_weights])
def test_divergence_is_an_error_that_leaves_the_model_as_it_was(diverge, monkeypatch,
                                                                 gaussian_data):
    model = _stream(MAFDensity(**TINY), np.array_split(gaussian_data, 2))
    before = pickle.dumps(model)
    monkeypatch.setattr(skmaf._training.streaming, "run_epoch", diverge)
    with pytest.raises(FloatingPointError, match="left as it was.*learning_rate_init"):
        model.partial_fit(gaussian_data)
    assert pickle.dumps(model) == before
    assert np.isfinite(model.score_samples(gaussian_data)).all()


def test_a_bad_chunk_leaves_the_model_as_it_was(gaussian_data):
    model = MAFDensity(**TINY).partial_fit(gaussian_data)
    before = pickle.dumps(model)
    bad = gaussian_data.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.partial_fit(bad)
    with pytest.raises(ValueError, match="1 sample"):
        model.partial_fit(gaussian_data[:1])
    assert pickle.dumps(model) == before


def test_a_failed_first_call_leaves_the_estimator_unfitted(monkeypatch, gaussian_data):
    model = MAFDensity(**TINY)
    monkeypatch.setattr(skmaf._training.streaming, "run_epoch", _nan_loss)
    with pytest.raises(FloatingPointError):
        model.partial_fit(gaussian_data)
    assert vars(model) == vars(MAFDensity(**TINY))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_stream_matches_the_cpu_and_continues_on_a_cpu_only_machine(monkeypatch,
                                                                          gaussian_data):
    chunks = np.array_split(gaussian_data, 3)
    on_gpu = _stream(MAFDensity(**{**TINY, "device": "cuda"}), chunks, passes=2)
    on_cpu = _stream(MAFDensity(**{**TINY, "device": "cpu"}), chunks, passes=2)
    assert on_gpu.device_.type == "cuda"
    # Different float32 kernels: not bit-identical, but the same model.
    np.testing.assert_allclose(on_gpu.score_samples(gaussian_data),
                               on_cpu.score_samples(gaussian_data), atol=1e-3)
    blob = pickle.dumps(on_gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning, match="not available here"):
        restored = pickle.loads(blob)
    _stream(restored, chunks)  # Adam's state was kept on the CPU
    assert restored.device_.type == "cpu" and restored.n_iter_ == 7
    assert np.isfinite(restored.score_samples(gaussian_data)).all()
