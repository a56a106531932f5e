"""Integer-valued columns: dequantized in training, scored as cell probabilities.

``score_samples`` returns, for the dequantized columns, the log-probability of
the row's unit cell (and a density for the others), so over a lattice the
estimated masses sum to about one and approach the true probabilities.
"""

import pickle
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import trapezoid
from sklearn.exceptions import ConvergenceWarning

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity
from skmaf._dequantization import N_CELL_POINTS, cell_points
from skmaf.exceptions import DegenerateDataWarning

from ._common import tiny_estimators


def _quiet_fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


@pytest.fixture(scope="module")
def lattice():
    """A Poisson count and a three-level category that depends on it: known masses."""
    rng = np.random.RandomState(0)
    count = rng.poisson(3.0, 3000)
    level = (count > 3).astype(int) + (rng.uniform(size=3000) < 0.3)
    return np.column_stack([count, level]).astype(float)


def _true_masses(counts, levels):
    p_count = stats.poisson.pmf(counts, 3.0)
    above = counts > 3
    p_level = np.where(levels == above, 0.7, np.where(levels == above + 1, 0.3, 0.0))
    return p_count * p_level


@pytest.fixture(scope="module")
def lattice_model(lattice):
    return _quiet_fit(MADEMoGDensity(n_components=5, n_hidden_units=32, max_iter=60,
                                     random_state=0), lattice)


def test_integer_columns_are_found_and_their_masses_sum_to_one(lattice_model):
    np.testing.assert_array_equal(lattice_model.dequantized_features_, [0, 1])
    counts, levels = np.meshgrid(np.arange(0, 25), np.arange(-3, 6), indexing="ij")
    grid = np.column_stack([counts.ravel(), levels.ravel()]).astype(float)
    masses = np.exp(lattice_model.score_samples(grid))
    assert masses.sum() == pytest.approx(1.0, abs=0.03)


def test_estimated_masses_approach_the_true_ones(lattice_model):
    counts, levels = np.meshgrid(np.arange(0, 25), np.arange(-3, 6), indexing="ij")
    counts, levels = counts.ravel(), levels.ravel()
    grid = np.column_stack([counts, levels]).astype(float)
    masses = np.exp(lattice_model.score_samples(grid))
    total_variation = 0.5 * np.abs(masses - _true_masses(counts, levels)).sum()
    assert total_variation < 0.1


def test_mixed_discrete_and_continuous_columns_integrate_to_one():
    """Summed over the integers and integrated over the continuous column: one."""
    rng = np.random.RandomState(1)
    count = rng.poisson(2.0, 1500)
    X = np.column_stack([rng.normal(count, 1.0), count]).astype(float)
    model = _quiet_fit(MAFDensity(n_transforms=2, n_hidden_units=16, max_iter=20,
                                  random_state=0), X)
    np.testing.assert_array_equal(model.dequantized_features_, [1])
    x = np.linspace(-12, 22, 1201)
    total = 0.0
    for k in range(-4, 16):
        log_p = model.score_samples(np.column_stack([x, np.full_like(x, k)]))
        total += trapezoid(np.exp(log_p), x)
    assert total == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=lambda e: type(e).__name__)
def test_samples_are_integers_and_scores_batch_invariant(estimator, lattice):
    model = _quiet_fit(estimator, lattice[:300])
    samples = model.sample(50, random_state=0)
    np.testing.assert_array_equal(samples, np.floor(samples))
    alone = np.concatenate([model.score_samples(row[None]) for row in lattice[:9]])
    np.testing.assert_array_equal(alone, model.score_samples(lattice[:9]))
    if hasattr(model, "transform"):
        np.testing.assert_allclose(model.inverse_transform(model.transform(lattice[:20])),
                                   lattice[:20], atol=1e-9)


def test_the_cell_estimate_is_a_fixed_quadrature_of_the_density():
    """score_samples = log mean_k p(x + v_k) over the fixed points, where p is the
    continuous density the model learned (seen with dequantize=None on the same
    fitted weights)."""
    rng = np.random.RandomState(2)
    X = np.column_stack([rng.normal(size=400), rng.poisson(4.0, 400)]).astype(float)
    model = _quiet_fit(MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
                                  random_state=0), X)
    continuous = pickle.loads(pickle.dumps(model))
    continuous.dequantized_features_ = np.empty(0, dtype=np.int64)
    points = cell_points(1)
    assert points.shape == (N_CELL_POINTS, 1)
    assert sorted(points[:, 0]) == pytest.approx((np.arange(N_CELL_POINTS) + 0.5)
                                                 / N_CELL_POINTS)
    shifted = [continuous.score_samples(X[:10] + np.array([0.0, v])) for v in points[:, 0]]
    expected = np.log(np.mean(np.exp(shifted), axis=0))
    np.testing.assert_allclose(model.score_samples(X[:10]), expected, rtol=1e-10)


def test_a_constant_integer_column_is_one_cell_of_probability_one():
    """Dequantized, a column that is always 3 is uniform on [3, 4): no spike, no
    warning, and its cell's probability near 1 (a little mass leaks past the cell's
    edges, which a smooth flow cannot make sharp)."""
    rng = np.random.RandomState(3)
    X = np.column_stack([rng.normal(size=1000), np.full(1000, 3.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MAFDensity(n_transforms=2, n_hidden_units=16, max_iter=30,
                           random_state=0).fit(X)
    np.testing.assert_array_equal(model.dequantized_features_, [1])
    x = np.linspace(-6, 6, 1201)
    log_p = model.score_samples(np.column_stack([x, np.full_like(x, 3.0)]))
    assert 0.85 < trapezoid(np.exp(log_p), x) < 1.01
    assert np.mean(model.sample(200, random_state=0)[:, 1] == 3.0) > 0.85


def test_named_columns_and_none(lattice):
    X = np.column_stack([lattice, np.random.RandomState(0).normal(size=len(lattice))])[:300]
    for dequantize, expected in [([0], [0]), ([True, False, False], [0]), (None, [])]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=1,
                               dequantize=dequantize, random_state=0).fit(X)
        np.testing.assert_array_equal(model.dequantized_features_, expected)


@pytest.mark.parametrize("dequantize, message", [
    ([2], "named in dequantize but are not integer-valued"),
    ([5], "outside"),
    ([True, False], "one entry per feature"),
    (["a"], "no feature names"),
    ([[0, 1]], "must be 'auto', None"),
])
def test_bad_dequantize_values_raise(dequantize, message, lattice):
    X = np.column_stack([lattice, np.random.RandomState(0).normal(size=len(lattice))])[:100]
    with pytest.raises(ValueError, match=message):
        MAFDensity(dequantize=dequantize, max_iter=1).fit(X)


def test_feature_names_can_name_the_columns(lattice):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(lattice[:200], columns=["count", "level"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RealNVPDensity(n_transforms=1, n_hidden_units=4, max_iter=1,
                               dequantize=["level"], random_state=0).fit(frame)
    np.testing.assert_array_equal(model.dequantized_features_, [1])


def test_partial_fit_refuses_fractions_in_a_dequantized_column(lattice):
    model = MAFDensity(n_transforms=1, n_hidden_units=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(lattice[:200])
    before = pickle.dumps(model)
    with pytest.raises(ValueError, match="non-integer values"):
        model.partial_fit(lattice[200:400] + 0.5)
    assert pickle.dumps(model) == before
    np.testing.assert_array_equal(model.sample(5, random_state=0),
                                  np.floor(model.sample(5, random_state=0)))
