"""Bad input gets a clear error and leaves a fitted estimator exactly as it was."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity
from skmaf.exceptions import DegenerateDataWarning

from ._common import estimator_id, tiny_estimators

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(params=tiny_estimators(), ids=estimator_id)
def fitted(request, gaussian_data):
    return clone(request.param).fit(gaussian_data)


def _expecting(model, n_given):
    return f"X has {n_given} features, but {type(model).__name__} is expecting 3"


def _nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def _inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


BAD_FIT_INPUTS = {
    "nan": (_nan, ValueError, "Input X contains NaN"),
    "inf": (_inf, ValueError, "Input X contains infinity"),
    "sparse": (sp.csr_matrix, TypeError, "[Ss]parse"),
    "one row": (lambda X: X[:1], ValueError, "1 sample"),
    "no rows": (lambda X: X[:0], ValueError, "0 sample"),
    "strings": (lambda X: np.array([["a", "b", "c"]] * 5, dtype=object), ValueError,
                "could not convert string to float"),
    "1-d": (lambda X: X[:, 0], ValueError, "Expected 2D array, got 1D array"),
    "complex": (lambda X: X + 1j, ValueError, "Complex data not supported"),
}


@pytest.mark.parametrize("case", BAD_FIT_INPUTS)
def test_bad_training_data_is_rejected_and_the_fitted_model_is_kept(case, fitted, gaussian_data):
    make_bad, error, message = BAD_FIT_INPUTS[case]
    before = pickle.dumps(fitted)
    scores = fitted.score_samples(gaussian_data)
    with pytest.raises(error, match=message):
        fitted.fit(make_bad(gaussian_data))
    assert pickle.dumps(fitted) == before
    np.testing.assert_array_equal(fitted.score_samples(gaussian_data), scores)


@pytest.mark.parametrize("method", ["score_samples", "score", "transform"])
def test_bad_scoring_data_is_rejected(method, fitted, gaussian_data):
    if not hasattr(fitted, method):
        pytest.skip("no base-space map for this model")
    call = getattr(fitted, method)
    with pytest.raises(ValueError, match=_expecting(fitted, 2)):
        call(gaussian_data[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        call(_nan(gaussian_data))
    with pytest.raises(TypeError, match="[Ss]parse"):
        call(sp.csr_matrix(gaussian_data))


def test_inverse_transform_checks_its_input(fitted):
    if not hasattr(fitted, "inverse_transform"):
        pytest.skip("no base-space map for this model")
    with pytest.raises(ValueError, match=_expecting(fitted, 2)):
        fitted.inverse_transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.inverse_transform(np.full((4, 3), np.nan))


@pytest.mark.parametrize("estimator", [MAFDensity, MADEMoGDensity, RealNVPDensity])
@pytest.mark.parametrize("method", ["score_samples", "score", "transform", "inverse_transform",
                                    "sample"])
def test_unfitted_model_raises_not_fitted(estimator, method, gaussian_data):
    if not hasattr(estimator(), method):
        pytest.skip("no base-space map for this model")
    args = () if method == "sample" else (gaussian_data,)
    with pytest.raises(NotFittedError):
        getattr(estimator(), method)(*args)


@pytest.mark.parametrize("n_samples, error", [(0, ValueError), (-1, ValueError),
                                              (2.5, TypeError), (True, TypeError)])
def test_sample_rejects_bad_counts(fitted, n_samples, error):
    with pytest.raises(error, match="n_samples"):
        fitted.sample(n_samples)


@pytest.mark.parametrize("params, message", [
    (dict(n_transforms=0), "n_transforms"),
    (dict(n_hidden_units=2.5), "n_hidden_units"),
    (dict(activation="sigmoid"), "activation"),
    (dict(input_order="backwards"), "input_order"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(learning_rate_init=0), "learning_rate_init"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(ema_decay=-0.1), "ema_decay"),
    (dict(device=3), "device"),
    (dict(n_components=0), "n_components"),
])
@pytest.mark.parametrize("estimator", [MAFDensity, MADEMoGDensity, RealNVPDensity])
def test_invalid_parameters_are_reported_at_fit(estimator, params, message, gaussian_data):
    if message not in estimator().get_params():
        pytest.skip(f"{estimator.__name__} has no {message}")
    model = estimator(**params)  # never raises in __init__
    expected = f"The '{message}' parameter of {estimator.__name__} must"
    with pytest.raises(ValueError, match=expected):
        model.fit(gaussian_data)


@pytest.mark.parametrize("order", [[0, 1], [0, 1, 1], [1, 2, 3]])
def test_explicit_order_must_be_a_permutation_of_the_features(order, gaussian_data, tiny_params):
    with pytest.raises(ValueError, match=r"permutation of range\(3\)"):
        MAFDensity(**{**tiny_params, "input_order": order}).fit(gaussian_data)


def test_explicit_order_is_used(gaussian_data, tiny_params):
    model = MAFDensity(**{**tiny_params, "input_order": [2, 0, 1]}).fit(gaussian_data)
    assert model.module_.transforms[0].made.order.tolist() == [2, 0, 1]


@pytest.mark.parametrize("device", ["not-a-device", "cuda:99", "meta"])
def test_unavailable_device_is_a_clear_error(device, gaussian_data, tiny_params):
    with pytest.raises(ValueError, match="device="):
        MAFDensity(**{**tiny_params, "device": device}).fit(gaussian_data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(gaussian_data, tiny_params):
    with pytest.raises(ValueError, match="CUDA is not available"):
        MAFDensity(**{**tiny_params, "device": "cuda"}).fit(gaussian_data)


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_one_feature_works(estimator):
    X = np.random.RandomState(0).exponential(size=(80, 1))
    model = clone(estimator).fit(X)
    assert np.isfinite(model.score_samples(X)).all()
    assert model.sample(3, random_state=0).shape == (3, 1)
    if hasattr(model, "transform"):
        np.testing.assert_allclose(model.inverse_transform(model.transform(X)), X, atol=1e-10)


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_constant_column_warns_and_stays_finite(estimator):
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=200), np.full(200, 4.5), rng.normal(size=200)])
    model = clone(estimator).set_params(max_iter=30, learning_rate_init=1e-2)
    with pytest.warns(DegenerateDataWarning, match=r"Feature\(s\) \[1\] are constant"):
        model.fit(X)
    assert np.isfinite(model.loss_curve_).all()
    assert np.isfinite(model.score_samples(X)).all()
    assert np.isfinite(model.sample(10, random_state=0)).all()


def test_far_away_rows_score_finite_and_ever_lower(fitted, gaussian_data):
    """Along any ray, the log-density falls without bound: no NaN, no wrap-around.

    Near the data the networks' ReLU regions change along the ray, and the
    density need not fall monotonically there; far out (from 1e4 standard
    deviations) every unit is in one region, the flow is affine and the
    log-density falls like minus a quadratic.
    """
    rng = np.random.RandomState(0)
    distances = np.array([1e1, 1e2, 1e4, 1e6, 1e8])
    lowest_in_data = fitted.score_samples(gaussian_data).min()
    for direction in rng.normal(size=(5, 3)):
        direction /= np.linalg.norm(direction)
        rows = gaussian_data.mean(axis=0) + distances[:, None] * direction
        scores = fitted.score_samples(rows)
        assert not np.isnan(scores).any()
        assert np.all(scores[1:] < lowest_in_data)  # from 50 standard deviations out
        assert np.all(np.diff(scores[2:]) < 0)


def test_float32_and_integer_input(tiny_params):
    X = np.random.RandomState(0).randint(0, 5, size=(60, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        from_int = MAFDensity(**tiny_params).fit(X)
        from_float32 = MAFDensity(**tiny_params).fit(X.astype(np.float32))
    np.testing.assert_array_equal(from_int.score_samples(X), from_float32.score_samples(X))
    assert from_int.score_samples(X.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("make_column, dequantize, message", [
    (lambda rng: rng.randint(0, 5, 200).astype(float), None,
     r"Feature\(s\) \[1\] are integer-valued but not dequantized.*dequantize='auto'"),
    (lambda rng: rng.choice([0.1, 0.25, 0.7], 200), "auto",
     r"Feature\(s\) \[1\] take few distinct values.*divide them by s and name them"),
], ids=["integers", "repeated"])
def test_discrete_columns_that_are_not_dequantized_warn(make_column, dequantize, message,
                                                        tiny_params):
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=200), make_column(rng)])
    with pytest.warns(DegenerateDataWarning, match=message):
        MAFDensity(dequantize=dequantize, **tiny_params).fit(X)


def test_dequantized_columns_do_not_warn(tiny_params):
    """What dequantize="auto" dequantizes is continuous to the model; a column beyond
    2**52 (every float64 an integer) is neither dequantized nor said to be discrete."""
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=200), rng.poisson(3.0, 200),
                         2.0**53 * (1 + rng.uniform(size=200))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = MAFDensity(**tiny_params).fit(X)
    assert not [w for w in caught if "Feature(s)" in str(w.message)]
    np.testing.assert_array_equal(model.dequantized_features_, [1])


def test_continuous_columns_do_not_warn(gaussian_data, tiny_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MAFDensity(**tiny_params).fit(gaussian_data)
    assert not [w for w in caught if "Feature(s)" in str(w.message)]


def test_reversed_and_fortran_ordered_views_are_accepted(fitted, gaussian_data):
    """Views with negative or column-major strides (X[::-1], X.T.T of an F array) work."""
    expected = fitted.score_samples(gaussian_data)
    np.testing.assert_array_equal(fitted.score_samples(gaussian_data[::-1])[::-1], expected)
    np.testing.assert_array_equal(fitted.score_samples(np.asfortranarray(gaussian_data)), expected)
    if hasattr(fitted, "transform"):
        U = fitted.transform(gaussian_data)
        np.testing.assert_array_equal(fitted.transform(gaussian_data[::-1])[::-1], U)
        np.testing.assert_array_equal(fitted.inverse_transform(U[::-1])[::-1],
                                      fitted.inverse_transform(U))


@pytest.mark.parametrize("estimator", [MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=3,
                                                  random_state=0),
                                       MADEMoGDensity(n_hidden_units=8, max_iter=3,
                                                      random_state=0)],
                         ids=lambda e: type(e).__name__)
def test_a_refit_that_fails_after_validation_leaves_the_fitted_model_as_it_was(
        estimator, gaussian_data):
    """Data with another number of features passes validation (which resets
    n_features_in_) and then fails in the builder: an input order of the old length."""
    model = estimator.set_params(input_order=[2, 0, 1]).fit(gaussian_data)
    before = (model.n_features_in_, model.score_samples(gaussian_data), model.module_)
    with pytest.raises(ValueError, match="permutation of range\\(2\\)"):
        model.fit(gaussian_data[:, :2])
    assert model.n_features_in_ == before[0] == 3 and model.module_ is before[2]
    np.testing.assert_array_equal(model.score_samples(gaussian_data), before[1])


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
def test_a_tiny_scale_is_a_scale_not_a_constant(estimator, gaussian_data):
    """Fitting a * X gives log-densities lower by exactly D log a, however small a is:
    the constant-column test is relative to each column's own magnitude."""
    X = gaussian_data
    on_x = clone(estimator).fit(X).score_samples(X[:5])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        on_tiny = clone(estimator).fit(X * 1e-15).score_samples(X[:5] * 1e-15)
    np.testing.assert_allclose(on_tiny - on_x, 3 * 15 * np.log(10), atol=1e-3)


def _degenerate_warnings(X, tiny_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MAFDensity(**tiny_params).fit(X)
    return [str(w.message) for w in caught if w.category is DegenerateDataWarning]


def test_huge_columns_get_no_advice_to_dequantize(tiny_params):
    """Beyond 2**52 every float64 is an integer: that says nothing about the data."""
    X = np.random.RandomState(0).normal(size=(300, 2)) * 1e30
    assert _degenerate_warnings(X, tiny_params) == []


def test_columns_that_float64_rounding_quantizes_get_their_own_advice(tiny_params):
    X = 1.7e9 + 1e-5 * np.random.RandomState(0).normal(size=(300, 2))
    messages = _degenerate_warnings(X, tiny_params)
    assert len(messages) == 1 and "float64 rounding" in messages[0]
    assert "Dequantize" not in messages[0] and "Subtract a reference value" in messages[0]


def test_a_column_constant_up_to_rounding_is_said_to_be_treated_as_constant(tiny_params):
    X = np.random.RandomState(0).normal(size=(300, 2))
    X[:, 1] = 1e9 + np.where(np.arange(300) % 2, 1, 0) * np.spacing(1e9)
    messages = _degenerate_warnings(X, tiny_params)
    assert any("treated as constant" in m and "[1]" in m for m in messages)


def test_linearly_dependent_columns_warn(tiny_params):
    x1 = np.random.RandomState(0).normal(size=300)
    messages = _degenerate_warnings(np.column_stack([x1, 2 * x1 + 1]), tiny_params)
    assert any("linearly dependent" in m and "dimension 1 of 2" in m for m in messages)
    independent = np.random.RandomState(1).normal(size=(300, 2))
    assert _degenerate_warnings(independent, tiny_params) == []


def test_a_variance_that_overflows_is_a_clear_error_and_keeps_the_fitted_model(
        tiny_params, gaussian_data):
    model = MAFDensity(**tiny_params).fit(gaussian_data)
    before = model.score_samples(gaussian_data)
    with pytest.raises(ValueError, match="too large for float64 statistics"):
        model.fit(gaussian_data * 1e200)
    np.testing.assert_array_equal(model.score_samples(gaussian_data), before)


def test_rows_beyond_what_the_networks_can_represent_score_minus_infinity(fitted,
                                                                          gaussian_data):
    """Not -1.8e308 (the largest float), which the mean in score would overflow."""
    rows = gaussian_data[:3] + 1e300
    scores = fitted.score_samples(rows)
    assert np.all((scores == -np.inf) | (np.isfinite(scores) & (scores > -1e300)))
    assert fitted.score(rows) <= scores.max()  # no overflow warning (an error here)


def test_transform_follows_the_fitted_model_not_parameters_set_since(gaussian_data,
                                                                      tiny_params):
    """The map is the fitted model's (a mixture base's Rosenblatt map here), whatever
    set_params has changed since."""
    mixture = MAFDensity(**tiny_params, n_components=3).fit(gaussian_data)
    expected = mixture.transform(gaussian_data)
    mixture.set_params(n_components=1)
    np.testing.assert_array_equal(mixture.transform(gaussian_data), expected)
    np.testing.assert_allclose(mixture.inverse_transform(expected), gaussian_data, atol=1e-9)


def test_a_column_varying_by_a_few_ulps_is_said_to_be_rounding_quantized(tiny_params):
    """A column whose values differ only in their last bits (e.g. a standardised
    constant) once broke the linear-dependence test (an SVD of NaNs); it is said to be
    quantized by rounding and left out of that test."""
    rng = np.random.RandomState(0)
    tiny = -0.06 + np.spacing(0.06) * rng.randint(-1000, 1000, 300)
    X = np.column_stack([rng.normal(size=300), tiny, rng.normal(size=300)])
    with pytest.warns(DegenerateDataWarning, match=r"\[1\] vary by less than 1e-8"):
        model = MAFDensity(**tiny_params).fit(X)
    assert np.isfinite(model.score_samples(X)).all()
