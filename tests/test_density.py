"""The fitted model is an exact density in the user's units, and a good one."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import trapezoid
from sklearn.base import clone

from skmaf import MADEMoGDensity, MAFDensity
from skmaf._runtime.chunks import SCORING_CHUNK_SIZE

from ._common import estimator_id, paper_example, tiny_estimators

# The results depend on the computation path: CI runs these on every path.
pytestmark = [pytest.mark.every_path,
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _fit_bimodal_1d():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(-2, 0.5, 150), rng.normal(1.5, 1.0, 150)])[:, None]
    return MAFDensity(n_transforms=3, n_hidden_units=8, max_iter=30, random_state=0).fit(X * 10)


def test_density_integrates_to_one_in_1d():
    model = _fit_bimodal_1d()
    grid = np.linspace(-120, 120, 40001)
    density = np.exp(model.score_samples(grid[:, None]))
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)


def test_density_integrates_to_one_in_2d():
    X, _ = paper_example(400, random_state=0)
    model = MAFDensity(n_transforms=3, n_hidden_units=16, max_iter=20, random_state=0).fit(X)
    x1 = np.linspace(-12, 25, 601)
    x2 = np.linspace(-14, 14, 501)
    grid = np.stack(np.meshgrid(x1, x2, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(model.score_samples(grid)).reshape(len(x1), len(x2))
    assert trapezoid(trapezoid(density, x2, axis=1), x1) == pytest.approx(1.0, abs=5e-3)


def test_affine_change_of_units_shifts_log_density_by_the_jacobian():
    rng = np.random.RandomState(1)
    X = rng.gamma(2.0, size=(300, 3))
    scale = np.array([1e-3, 7.0, 250.0])
    offset = np.array([5.0, -3.0, 1e4])
    params = dict(n_transforms=2, n_hidden_units=8, max_iter=10, random_state=3)
    original = MAFDensity(**params).fit(X)
    rescaled = MAFDensity(**params).fit(X * scale + offset)
    np.testing.assert_allclose(
        rescaled.score_samples(X * scale + offset),
        original.score_samples(X) - np.sum(np.log(scale)),
        rtol=1e-9,
        atol=1e-9,
    )


def test_inverse_transform_undoes_transform(gaussian_data, tiny_params):
    model = MAFDensity(**tiny_params).fit(gaussian_data)
    U = model.transform(gaussian_data)
    assert U.dtype == np.float64
    np.testing.assert_allclose(model.inverse_transform(U), gaussian_data, rtol=1e-10, atol=1e-10)


def test_log_density_is_base_density_plus_log_det_in_data_units(gaussian_data, tiny_params):
    """score_samples agrees with the change of variables computed by finite differences."""
    model = MAFDensity(**tiny_params).fit(gaussian_data)
    x = gaussian_data[:5]
    step = 1e-6
    for row in x:
        jacobian = np.column_stack([
            (model.transform((row + step * e)[None]) - model.transform((row - step * e)[None]))[0]
            / (2 * step)
            for e in np.eye(3)
        ])
        u = model.transform(row[None])[0]
        expected = stats.norm.logpdf(u).sum() + np.linalg.slogdet(jacobian)[1]
        assert model.score_samples(row[None])[0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_maf_recovers_a_correlated_gaussian():
    rng = np.random.RandomState(0)
    cov = np.array([[2.0, 1.2, 0.0], [1.2, 1.0, -0.3], [0.0, -0.3, 0.5]])
    truth = stats.multivariate_normal(mean=[1.0, -2.0, 0.5], cov=cov)
    X = truth.rvs(3000, random_state=rng)
    X_test = truth.rvs(2000, random_state=rng)
    model = MAFDensity(n_transforms=1, n_hidden_units=8, random_state=0).fit(X)
    error = model.score_samples(X_test) - truth.logpdf(X_test)
    # The yardstick: the maximum-likelihood Gaussian of the same rows, whose
    # pointwise error is pure estimation error (about sqrt(9 / n) nats here).
    mle = stats.multivariate_normal(X.mean(axis=0), np.cov(X.T, bias=True))
    mle_error = mle.logpdf(X_test) - truth.logpdf(X_test)
    assert abs(error.mean()) < 0.03
    assert np.median(np.abs(error)) < 2 * np.median(np.abs(mle_error))
    U = model.transform(X_test)
    np.testing.assert_allclose(U.mean(axis=0), 0, atol=0.1)
    np.testing.assert_allclose(np.cov(U.T), np.eye(3), atol=0.1)


@pytest.mark.slow
def test_maf_fits_the_papers_example_that_a_single_made_cannot():
    """The paper's section 3.2 example: x2 ~ N(0, 4), x1 | x2 ~ N(x2**2 / 4, 1)."""
    X, _ = paper_example(3000, random_state=0)
    X_test, log_p_test = paper_example(5000, random_state=1)
    true_mean = log_p_test.mean()
    made = MAFDensity(n_transforms=1, batch_norm=False, n_hidden_units=32, random_state=0)
    maf = MAFDensity(n_transforms=5, n_hidden_units=32, random_state=0)
    made_score = made.fit(X).score(X_test)
    maf_score = maf.fit(X).score(X_test)
    standard_error = np.std(maf.score_samples(X_test) - log_p_test) / np.sqrt(len(X_test))
    assert maf_score > true_mean - 0.05 - 2 * standard_error
    assert made_score < true_mean - 0.2
    assert maf_score > made_score + 0.2


def test_samples_have_the_moments_of_the_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(2000, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]]) + [3.0, -1.0]
    model = MAFDensity(n_transforms=2, n_hidden_units=16, max_iter=30, random_state=0).fit(X)
    samples = model.sample(20000, random_state=0)
    np.testing.assert_allclose(samples.mean(axis=0), X.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(samples.T), np.cov(X.T), atol=0.08)
    # Samples are exact draws of the model: transform maps them back to N(0, I).
    U = model.transform(samples)
    np.testing.assert_allclose(U.std(axis=0), 1.0, atol=0.03)


@pytest.mark.parametrize("estimator", [
    MADEMoGDensity(n_components=3, n_hidden_units=16, max_iter=20, random_state=0),
    MAFDensity(n_transforms=2, n_components=3, n_hidden_units=16, max_iter=20, random_state=0),
], ids=["MADE MoG", "MAF MoG"])
def test_a_mixture_base_maps_its_samples_onto_standard_normal(estimator):
    """With a mixture base, transform is the Rosenblatt map after the flow: the model's
    own samples come out i.i.d. N(0, I), whatever the fit, and inverse_transform undoes it."""
    X, _ = paper_example(1500, random_state=0)
    model = estimator.fit(X)
    U = model.transform(model.sample(4000, random_state=1))
    for column in U.T:
        assert stats.kstest(column, "norm").pvalue > 0.01
    assert abs(np.corrcoef(U.T)[0, 1]) < 4 / np.sqrt(4000)
    np.testing.assert_allclose(model.inverse_transform(model.transform(X)), X,
                               rtol=1e-10, atol=1e-10)


def test_sampling_is_reproducible_and_depends_on_the_seed(gaussian_data, tiny_params):
    model = MAFDensity(**tiny_params).fit(gaussian_data)
    np.testing.assert_array_equal(model.sample(5, random_state=4), model.sample(5, random_state=4))
    assert not np.allclose(model.sample(5, random_state=4), model.sample(5, random_state=5))
    rng = np.random.RandomState(0)
    assert not np.allclose(model.sample(5, random_state=rng), model.sample(5, random_state=rng))


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_score_samples_is_batch_invariant_and_matches_the_float64_model(estimator, gaussian_data):
    """The accelerator's float32 scoring gives a row the same bits in any batch, across
    chunk boundaries, and agrees with the fitted float64 model to float32 rounding;
    the reference (accelerator off) scores in float64, the same to its rounding."""
    model = clone(estimator).fit(gaussian_data)
    chunk = SCORING_CHUNK_SIZE
    rows = np.random.RandomState(1).normal(size=(chunk + 37, 3)) * 2 + gaussian_data.mean(0)
    whole = model.score_samples(rows)
    tolerance = dict(rtol=0, atol=0) if model._scoring_flow is not None else dict(rtol=1e-12)
    for start, stop in [(0, 1), (5, 6), (3, 30), (chunk - 4, chunk + 9)]:
        np.testing.assert_allclose(model.score_samples(rows[start:stop]), whole[start:stop],
                                   **tolerance)
    np.testing.assert_allclose(model.score_samples(rows[::-1])[::-1], whole, **tolerance)

    z = torch.from_numpy((rows - model.shift_) / model.scale_)
    with torch.no_grad():
        exact = model.module_.log_prob(z).numpy() - np.log(model.scale_).sum()
    # Float32 rounding, relative: the tiny MAF MoG puts some rows 1e5 nats down.
    np.testing.assert_allclose(whole, exact, rtol=5e-5, atol=1e-5)
