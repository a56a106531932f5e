"""The paper's model family: exact densities, what each model can fit, parameter counts."""

import numpy as np
import pytest
from scipy.integrate import trapezoid
from sklearn.base import clone
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity

from ._common import estimator_id, paper_example, tiny_estimators


def _bimodal_1d(n=300):
    rng = np.random.RandomState(0)
    return np.concatenate([rng.normal(-2, 0.5, n // 2), rng.normal(1.5, 1.0, n // 2)])[:, None]


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_density_integrates_to_one_in_1d(estimator):
    model = clone(estimator).set_params(max_iter=30).fit(_bimodal_1d())
    grid = np.linspace(-14, 14, 20001)
    density = np.exp(model.score_samples(grid[:, None]))
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("estimator", [MADEMoGDensity(n_components=4, n_hidden_units=16),
                                       MAFDensity(2, n_components=4, n_hidden_units=16)],
                         ids=["MADEMoG", "MAF-MoG"])
def test_mixture_models_integrate_to_one_in_2d(estimator):
    X, _ = paper_example(400, random_state=0)
    model = clone(estimator).set_params(max_iter=20, random_state=0).fit(X)
    x1 = np.linspace(-12, 25, 601)
    x2 = np.linspace(-14, 14, 501)
    grid = np.stack(np.meshgrid(x1, x2, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(model.score_samples(grid)).reshape(len(x1), len(x2))
    assert trapezoid(trapezoid(density, x2, axis=1), x1) == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_samples_have_the_moments_of_the_data(estimator):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(2000, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]]) + [3.0, -1.0]
    model = clone(estimator).set_params(n_hidden_units=16, max_iter=30).fit(X)
    samples = model.sample(20000, random_state=0)
    np.testing.assert_allclose(samples.mean(axis=0), X.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(samples.T), np.cov(X.T), atol=0.08)
    np.testing.assert_array_equal(samples, model.sample(20000, random_state=0))


@pytest.mark.slow
def test_the_papers_example_across_the_family():
    """Section 3.2's example: MADE MoG and Real NVP must beat a Gaussian MADE by far."""
    X, _ = paper_example(3000, random_state=0)
    X_test, log_p_test = paper_example(5000, random_state=1)
    true_mean = log_p_test.mean()
    common = dict(n_hidden_units=32, random_state=0)
    made = MADEMoGDensity(n_components=1, **common).fit(X).score(X_test)
    made_mog = MADEMoGDensity(n_components=10, **common).fit(X).score(X_test)
    realnvp = RealNVPDensity(n_transforms=5, **common).fit(X).score(X_test)
    gaussian = GaussianMixture(1).fit(X).score(X_test)
    assert made < true_mean - 0.2
    assert gaussian < made  # a Gaussian conditional still beats one joint Gaussian
    assert made_mog > true_mean - 0.1
    assert realnvp > true_mean - 0.1


def test_grid_search_over_every_architecture_parameter():
    X, _ = paper_example(240, random_state=0)
    grids = [
        (MADEMoGDensity(max_iter=4, random_state=0),
         {"n_components": [1, 3], "n_hidden_layers": [1, 2], "n_hidden_units": [4, 8]}),
        (RealNVPDensity(max_iter=4, random_state=0),
         {"n_transforms": [2, 4], "n_hidden_layers": [1, 2], "n_hidden_units": [4, 8]}),
        (MAFDensity(max_iter=4, random_state=0),
         {"n_transforms": [1, 2], "n_components": [1, 3], "n_hidden_units": [4, 8]}),
    ]
    for estimator, grid in grids:
        search = GridSearchCV(estimator, grid, cv=2).fit(X)
        scores = search.cv_results_["mean_test_score"]
        assert len(scores) == 8 and np.isfinite(scores).all()
        assert search.best_score_ == scores.max()


# Appendix C of the paper counts connection weights; with H a multiple of D - 1 the
# masks make the count exact for one hidden layer. For L > 1 the exact count of the
# hidden-to-hidden connections is H^2 D / (2 (D - 1)), the paper's H^2 / 2 for large D.
D, H, K, C = 5, 40, 3, 4


def _fitted_count(estimator):
    X = np.random.RandomState(0).normal(size=(30, D))
    return clone(estimator).set_params(max_iter=1).fit(X).n_parameters_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parameter_counts_match_the_papers_formulas():
    made = _fitted_count(MADEMoGDensity(n_components=1, n_hidden_units=H))
    assert made == 3 / 2 * D * H
    maf = _fitted_count(MAFDensity(K, n_hidden_units=H))
    assert maf == K * 3 / 2 * D * H
    # The paper's RealNVP formula assumes even D; the exact count for odd D is
    # 2 K H (D_a + D_b) = 2 K D H all the same.
    realnvp = _fitted_count(RealNVPDensity(K, n_hidden_layers=2, n_hidden_units=H))
    assert realnvp == 2 * K * D * H + 2 * K * H**2
    # With C > 1 the MoG MADE outputs 3 parameters per component (logit, mean,
    # log-scale); the paper states (C + 1/2) D H.
    made_mog = _fitted_count(MADEMoGDensity(n_components=C, n_hidden_units=H))
    assert made_mog == (3 * C + 1) / 2 * D * H
    two_layers = _fitted_count(MADEMoGDensity(n_components=1, n_hidden_layers=2, n_hidden_units=H))
    assert two_layers == 3 / 2 * D * H + H**2 * D / (2 * (D - 1))
