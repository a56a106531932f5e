"""The conditional MAFs: MAFRegressor's p(y | x) and MAFClassifier's p(x | class).

Densities against closed forms and quadrature, quantiles against the true
conditional distribution, Bayes' rule between the probability methods, and
everything scikit-learn promises of a regressor and a classifier.
"""

import pickle
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import trapezoid
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmaf import MAFClassifier, MAFRegressor
from skmaf.metrics import log_likelihood_scorer

from ._common import STRICT_XFAIL

#: Small, and quick to converge on the few hundred rows of scikit-learn's checks.
QUICK = dict(n_transforms=1, n_hidden_units=16, max_iter=50, learning_rate_init=1e-2,
             random_state=0)


@parametrize_with_checks([MAFRegressor(**QUICK), MAFClassifier(**QUICK)], **STRICT_XFAIL)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _quiet(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


# ------------------------------------------------------------------ regressor
def _bimodal(n, seed):
    """p(y | x): 0.7 N(sin 2x + 1, s(x)^2) + 0.3 N(sin 2x - 1, s(x)^2), s growing with x."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-2, 2, n)
    upper = rng.uniform(size=n) < 0.7
    y = np.sin(2 * x) + np.where(upper, 1.0, -1.0) + _noise_scale(x) * rng.normal(size=n)
    return x[:, None], y


def _noise_scale(x):
    return 0.3 + 0.15 * (x + 2)


def _true_log_density(X, y):
    m, s = np.sin(2 * X[:, 0]), _noise_scale(X[:, 0])
    return np.log(0.7 * stats.norm.pdf(y, m + 1, s) + 0.3 * stats.norm.pdf(y, m - 1, s))


def _true_median(X):
    m, s = np.sin(2 * X[:, 0]), _noise_scale(X[:, 0])
    low, high = m - 5.0, m + 5.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        below = (0.7 * stats.norm.cdf(middle, m + 1, s)
                 + 0.3 * stats.norm.cdf(middle, m - 1, s)) < 0.5
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return 0.5 * (low + high)


@pytest.fixture(scope="module")
def bimodal_regressor():
    X, y = _bimodal(3000, 0)
    return _quiet(MAFRegressor(n_transforms=1, n_hidden_units=32, max_iter=100,
                               learning_rate_init=3e-3, random_state=0), X, y)


@pytest.fixture(scope="module")
def held_out():
    return _bimodal(2000, 1)


def test_held_out_likelihood_beats_the_right_gaussian(bimodal_regressor, held_out):
    X, y = held_out
    m, s = np.sin(2 * X[:, 0]), _noise_scale(X[:, 0])
    mean, variance = m + 0.4, s**2 + 4 * 0.7 * 0.3  # the mixture's own moments
    gaussian = stats.norm.logpdf(y, mean, np.sqrt(variance))
    model = bimodal_regressor.log_density(X, y)
    paired = model - gaussian
    assert paired.mean() > 2 * paired.std() / np.sqrt(len(y))
    assert model.mean() > _true_log_density(X, y).mean() - 0.05


def test_central_intervals_cover_their_probability(bimodal_regressor, held_out):
    X, y = held_out
    interval = bimodal_regressor.predict_interval(X, coverage=0.9)
    covered = (y >= interval[:, 0]) & (y <= interval[:, 1])
    assert covered.mean() == pytest.approx(0.9, abs=0.03)


def test_predict_is_the_conditional_median(bimodal_regressor, held_out):
    X, _ = held_out
    predicted = bimodal_regressor.predict(X)
    np.testing.assert_array_equal(predicted,
                                  bimodal_regressor.predict_quantiles(X, [0.5])[:, 0])
    assert np.mean(np.abs(predicted - _true_median(X))) < 0.1


def test_with_the_defensive_gaussian_base_predict_is_the_median_too(held_out):
    """One Gaussian component and the default tail weight: the base is the defensive
    mixture, whose conditional medians are 0, so the flow's image of u = 0 is the
    median that the bisection of the conditional CDF finds."""
    X, y = held_out
    model = _quiet(MAFRegressor(**{**QUICK, "n_components": 1}), X, y)
    assert model.module_.base.tail_weight == model.tail_weight > 0
    np.testing.assert_allclose(model.predict(X[:20]),
                               model.predict_quantiles(X[:20], [0.5])[:, 0],
                               atol=1e-6 * y.std())


def test_quantiles_invert_the_model_cdf(bimodal_regressor):
    """The CDF of the model's own density (trapezoid quadrature of exp(log_density))
    at each predicted quantile is its level; quantiles grow with the level."""
    x = np.array([[-1.5], [0.0], [1.2]])
    levels = np.array([0.05, 0.3, 0.5, 0.9])
    quantiles = bimodal_regressor.predict_quantiles(x, levels)
    assert np.all(np.diff(quantiles, axis=1) > 0)
    grid = np.linspace(-8, 8, 16001)
    for row, row_quantiles in zip(x, quantiles):
        density = np.exp(bimodal_regressor.log_density(np.repeat(row[None], len(grid), 0),
                                                       grid))
        cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2
                                               * np.diff(grid))])
        np.testing.assert_allclose(np.interp(row_quantiles, grid, cdf), levels, atol=2e-3)


def test_log_density_integrates_to_one_over_y(bimodal_regressor):
    grid = np.linspace(-10, 10, 20001)
    for x in (-1.9, 0.3, 1.7):
        log_p = bimodal_regressor.log_density(np.full((len(grid), 1), x), grid)
        assert trapezoid(np.exp(log_p), grid) == pytest.approx(1.0, abs=1e-3)


def test_log_density_is_in_the_units_of_y(bimodal_regressor, held_out):
    """Fitting on 10 y gives log-densities lower by exactly log 10 on 10 y, up to training
    noise; here the same weights: a refit with rescaled targets is a different fit, so
    compare through the standardisation, which absorbs the scale exactly."""
    X, y = held_out
    scaled = pickle.loads(pickle.dumps(bimodal_regressor))
    scaled.y_shift_, scaled.y_scale_ = 10 * scaled.y_shift_, 10 * scaled.y_scale_
    np.testing.assert_allclose(scaled.log_density(X, 10 * y),
                               bimodal_regressor.log_density(X, y) - np.log(10), rtol=1e-10)


def test_sample_y_follows_gaussian_process_shapes_and_the_model(bimodal_regressor):
    x = np.array([[0.5], [-1.0]])
    draws = bimodal_regressor.sample_y(x, n_samples=4000, random_state=0)
    assert draws.shape == (2, 4000)
    np.testing.assert_array_equal(draws, bimodal_regressor.sample_y(x, 4000, random_state=0))
    levels = np.mean(draws <= bimodal_regressor.predict(x)[:, None], axis=1)
    np.testing.assert_allclose(levels, 0.5, atol=0.03)


@pytest.fixture(scope="module")
def two_targets():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 2))
    Y = np.column_stack([X[:, 0], X[:, 0] * X[:, 1]]) + 0.3 * rng.normal(size=(400, 2))
    return X, Y


def test_several_targets(two_targets):
    X, Y = two_targets
    model = _quiet(MAFRegressor(**QUICK), X, Y)
    assert model.n_targets_ == 2
    assert model.predict(X[:5]).shape == (5, 2)
    assert model.sample_y(X[:5], n_samples=3, random_state=0).shape == (5, 2, 3)
    assert model.log_density(X[:5], Y[:5]).shape == (5,)
    with pytest.raises(ValueError, match="defined for one target"):
        model.predict_quantiles(X[:5], [0.5])
    # With a Gaussian base the centre is the flow's inverse at u = 0.
    gaussian = _quiet(MAFRegressor(**{**QUICK, "n_components": 1}), X, Y)
    np.testing.assert_allclose(gaussian.predict(X[:5]),
                               _inverse_at_zero(gaussian, X[:5]), rtol=1e-10)


def _inverse_at_zero(model, X):
    import torch

    context = torch.from_numpy((X - model.x_shift_) / model.x_scale_)
    with torch.no_grad():
        z = model.module_.from_base(torch.zeros(len(X), model.n_targets_, dtype=torch.float64),
                                    context).numpy()
    return z * model.y_scale_ + model.y_shift_


def test_a_column_y_gives_column_predictions(two_targets):
    X, Y = two_targets
    model = _quiet(MAFRegressor(**QUICK), X, Y[:, :1])
    assert model.predict(X[:3]).shape == (3, 1)
    assert model.sample_y(X[:3], n_samples=2).shape == (3, 1, 2)


def test_likelihood_selects_the_mixture_base_in_a_search():
    X, y = _bimodal(600, 2)
    search = GridSearchCV(MAFRegressor(**QUICK), {"n_components": [1, 5]}, cv=3,
                          scoring=log_likelihood_scorer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_params_ == {"n_components": 5}
    pipeline = make_pipeline(StandardScaler(), MAFRegressor(**QUICK))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_validate(pipeline, X, y, cv=2,
                                scoring={"ll": log_likelihood_scorer, "r2": "r2"})
    assert np.isfinite(scores["test_ll"]).all() and np.isfinite(scores["test_r2"]).all()
    with pytest.raises(ValueError, match="needs the targets"):
        log_likelihood_scorer(search.best_estimator_, X)


@pytest.mark.parametrize("method, arguments, message", [
    ("log_density", ([[0.0]], [[1.0, 2.0]]), "target"),
    ("log_density", ([[0.0]], [np.nan]), "finite"),
    ("predict_quantiles", ([[0.0]], [0.5, 1.0]), r"levels in \(0, 1\)"),
    ("predict_quantiles", ([[0.0]], []), "non-empty"),
    ("predict_interval", ([[0.0]], 1.5), "coverage"),
    ("sample_y", ([[0.0]], 0), "n_samples"),
    ("predict", ([[0.0, 1.0]],), "features"),
])
def test_bad_input_raises_clear_errors(bimodal_regressor, method, arguments, message):
    with pytest.raises(ValueError, match=message):
        getattr(bimodal_regressor, method)(*arguments)


def test_a_failed_refit_leaves_the_regressor_as_it_was(bimodal_regressor, held_out):
    model = pickle.loads(pickle.dumps(bimodal_regressor))
    before = model.predict(held_out[0][:5])
    with pytest.raises(ValueError):
        model.fit(held_out[0][:10], np.r_[np.nan, held_out[1][1:10]])
    np.testing.assert_array_equal(model.predict(held_out[0][:5]), before)


# ----------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def labelled():
    """Two classes with different shapes: a ring and a blob, string labels."""
    rng = np.random.RandomState(0)
    angle = rng.uniform(0, 2 * np.pi, 600)
    ring = np.column_stack([np.cos(angle), np.sin(angle)]) * 3 + 0.3 * rng.normal(size=(600, 2))
    blob = 0.8 * rng.normal(size=(300, 2))
    return np.vstack([ring, blob]), np.repeat(["ring", "blob"], [600, 300])


@pytest.fixture(scope="module")
def classifier(labelled):
    return _quiet(MAFClassifier(n_transforms=2, n_hidden_units=32, max_iter=60,
                                learning_rate_init=3e-3, random_state=0), *labelled)


def test_classes_and_priors(classifier, labelled):
    np.testing.assert_array_equal(classifier.classes_, ["blob", "ring"])
    np.testing.assert_allclose(classifier.class_prior_, [1 / 3, 2 / 3])
    assert classifier.score(*labelled) > 0.9


def test_bayes_rule_ties_the_probability_methods(classifier, labelled):
    X = labelled[0][::37]
    joint = classifier.predict_joint_log_proba(X)
    log_proba = classifier.predict_log_proba(X)
    np.testing.assert_allclose(log_proba, joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(classifier.predict_proba(X), np.exp(log_proba))
    np.testing.assert_allclose(classifier.predict_proba(X).sum(axis=1), 1.0)
    np.testing.assert_allclose(classifier.score_samples(X), logsumexp(joint, axis=1))
    np.testing.assert_array_equal(classifier.predict(X),
                                  classifier.classes_[np.argmax(joint, axis=1)])


def test_class_conditional_densities_integrate_to_one(classifier):
    grid = np.linspace(-9, 9, 301)
    xx, yy = np.meshgrid(grid, grid)
    rows = np.column_stack([xx.ravel(), yy.ravel()])
    joint = classifier.predict_joint_log_proba(rows)
    for c, prior in enumerate(classifier.class_prior_):
        density = np.exp(joint[:, c] - np.log(prior)).reshape(xx.shape)
        assert trapezoid(trapezoid(density, grid), grid) == pytest.approx(1.0, abs=5e-3)


def test_priors_move_the_posterior_by_bayes_rule(classifier, labelled):
    X, y = labelled
    even = clone(classifier).set_params(priors=[0.5, 0.5])
    even = _quiet(even, X, y)
    np.testing.assert_allclose(even.class_prior_, [0.5, 0.5])
    with pytest.raises(ValueError, match="one entry per class"):
        clone(classifier).set_params(priors=[1.0]).fit(X, y)
    with pytest.raises(ValueError, match="sum to 1"):
        clone(classifier).set_params(priors=[0.6, 0.6]).fit(X, y)


def test_sampling_draws_the_classes_asked_for(classifier):
    X, y = classifier.sample(y=["ring", "blob", "ring"], random_state=0)
    np.testing.assert_array_equal(y, ["ring", "blob", "ring"])
    assert X.shape == (3, 2)
    _, drawn = classifier.sample(3000, random_state=1)
    assert np.mean(drawn == "ring") == pytest.approx(2 / 3, abs=0.03)
    ring, _ = classifier.sample(y=["ring"] * 500, random_state=2)
    blob, _ = classifier.sample(y=["blob"] * 500, random_state=3)
    assert np.median(np.linalg.norm(blob, axis=1)) < 1.5 < np.median(
        np.linalg.norm(ring, axis=1))
    with pytest.raises(ValueError, match="among classes_"):
        classifier.sample(y=["square"])


def test_the_marginal_density_scores_anomalies_without_labels(classifier, labelled):
    inliers = labelled[0][:50]
    outliers = np.array([[6.0, 6.0], [0.0, 4.8], [-6.0, 0.5]])  # off the ring and the blob
    assert classifier.score_samples(outliers).max() < np.median(
        classifier.score_samples(inliers))


def test_integer_pixels_are_dequantized():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    model = _quiet(MAFClassifier(**QUICK), X[:300], y[:300])
    columns = model.dequantized_features_
    assert len(columns) > 50  # every pixel that is not constant (blank) in these rows
    samples, _ = model.sample(y=[3, 4], random_state=0)
    np.testing.assert_array_equal(samples[:, columns], np.floor(samples[:, columns]))


def test_pickle_and_clone_keep_the_conditional_models(classifier, bimodal_regressor, held_out):
    for model, X in ((classifier, held_out[0].repeat(2, axis=1)),
                     (bimodal_regressor, held_out[0])):
        restored = pickle.loads(pickle.dumps(model))
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        np.testing.assert_array_equal(getattr(restored, method)(X[:20]),
                                      getattr(model, method)(X[:20]))
        assert clone(model).get_params() == model.get_params()


def test_searches_over_the_architecture_and_joblib_round_trips(labelled, tmp_path):
    import joblib

    X, y = labelled
    search = GridSearchCV(MAFClassifier(**{**QUICK, "max_iter": 10}),
                          {"n_transforms": [1, 2], "n_hidden_units": [8, 16]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X[::3], y[::3])
    assert set(search.best_params_) == {"n_transforms", "n_hidden_units"}
    path = tmp_path / "classifier.joblib"
    joblib.dump(search.best_estimator_, path)
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X[:10]),
                                  search.best_estimator_.predict_proba(X[:10]))


@pytest.mark.parametrize("estimator", [MAFRegressor(**QUICK), MAFClassifier(**QUICK)],
                         ids=lambda e: type(e).__name__)
def test_device_is_validated_and_recorded(estimator, labelled):
    X, y = labelled[0][:60], np.arange(60) % 2
    with pytest.raises(ValueError, match="device"):
        clone(estimator).set_params(device="tpu").fit(X, y)
    fitted = _quiet(clone(estimator).set_params(device="cpu", max_iter=2), X, y)
    assert str(fitted.device_) == "cpu"
