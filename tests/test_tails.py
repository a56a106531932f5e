"""Far from the training data every estimator's log-density falls like a Gaussian tail.

Rows moved 1, 10 and 100 training ranges beyond the data, along each column and
along random directions, score finite and decreasing values; for the flows with a
Gaussian base, far out exactly the Gaussian tail the docstrings state (a concave
quadratic set by the flow's slope beyond the data), and no lower than its bound.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity
from skmaf.flows import DefensiveNormal, StandardNormal

from ._common import estimator_id

ESTIMATORS = [
    MAFDensity(n_transforms=3, n_hidden_units=16, max_iter=30, random_state=0),
    MAFDensity(n_transforms=2, n_hidden_units=16, n_components=3, max_iter=30, random_state=0),
    MADEMoGDensity(n_hidden_units=16, n_components=3, max_iter=30, random_state=0),
    RealNVPDensity(n_transforms=3, n_hidden_units=16, max_iter=30, random_state=0),
]


@pytest.fixture(scope="module")
def skewed_data():
    """Three columns, one with a long left tail: where stacked MAFs used to collapse."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(400, 3))
    x[:, 0] = -np.exp(x[:, 0])
    x[:, 2] += 0.5 * x[:, 1] ** 2
    return x


def _rays(X, n_random=4):
    """(start, unit direction) pairs leaving the data's box: through each column's
    maximum and minimum (the other columns at the median row), and from the median
    along random directions."""
    centre = np.median(X, axis=0)
    rays = []
    for i in range(X.shape[1]):
        for sign, edge in ((1.0, X[:, i].max()), (-1.0, X[:, i].min())):
            start = centre.copy()
            start[i] = edge
            rays.append((start, sign * np.eye(X.shape[1])[i]))
    rng = np.random.RandomState(1)
    for _ in range(n_random):
        direction = rng.normal(size=X.shape[1])
        rays.append((centre, direction / np.linalg.norm(direction)))
    return rays


@pytest.fixture(scope="module", params=ESTIMATORS, ids=estimator_id)
def fitted(request, skewed_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return request.param.fit(skewed_data)


def test_rows_beyond_the_data_score_finite_decreasing_values(fitted, skewed_data):
    span = np.ptp(skewed_data, axis=0).max()
    for start, direction in _rays(skewed_data):
        rows = start + np.array([1.0, 10.0, 100.0])[:, None] * span * direction
        log_p = fitted.score_samples(rows)
        assert np.isfinite(log_p).all()
        assert (np.diff(log_p) < 0).all(), (start, direction, log_p)


def _base_variables(fitted, rows):
    """The flow's base variables ``u`` (before any map onto N(0, I)), in float64."""
    x = torch.from_numpy((rows - fitted.shift_) / fitted.scale_)
    with torch.no_grad():
        return fitted.module_.to_base(x.to(fitted.device_)).cpu().numpy()


def test_far_out_gaussian_base_flows_have_a_gaussian_tail(fitted, skewed_data):
    """The stated asymptotics: beyond the training range of every layer, ``u`` is
    affine along a ray, ``u(t) = u_0 + w t``, and the log-determinant constant, so
    with N(0, I) ``log p = const - <u_0, w> t - |w|**2 t**2 / 2`` exactly, which
    bounds it below from the point ``u_0`` on by ``log p(u_0) - |u_0| |w| t -
    |w|**2 t**2 / 2``; with the defensive base (``tail_weight > 0``), where its wide
    component has taken over, the same with ``w / s`` and ``u_0 / s`` for ``w``
    and ``u_0``, ``s`` its scale."""
    base = fitted.module_.base
    if isinstance(base, StandardNormal):
        scale = 1.0
    elif isinstance(base, DefensiveNormal):
        scale = base.tail_scale
    else:
        pytest.skip("a mixture base's conditionals move with u: no fixed Gaussian far out")
    span = np.ptp(skewed_data, axis=0).max()
    for start, direction in _rays(skewed_data):
        t = np.array([1e3, 2e3, 3e3, 4e3]) * span
        rows = start + t[:, None] * direction
        u, log_p = _base_variables(fitted, rows) / scale, fitted.score_samples(rows)
        w = (u[1] - u[0]) / (t[1] - t[0])
        np.testing.assert_allclose(np.diff(u, axis=0), np.tile(u[1] - u[0], (3, 1)),
                                   rtol=1e-6, atol=1e-6 * np.abs(u).max())
        # The second difference of a quadratic in equal steps h is 2 c h**2 ...
        second = log_p[2] - 2 * log_p[1] + log_p[0]
        step = t[1] - t[0]
        # (score_samples evaluates the flow in float32: relative rounding ~1e-7
        # of values of ~1e8, which a second difference does not cancel)
        np.testing.assert_allclose(second, -np.dot(w, w) * step**2,
                                   atol=1e-5 * np.abs(log_p).max())
        # ... and the bound from the first far row holds at the others.
        s = t - t[0]
        bound = (log_p[0] - np.linalg.norm(u[0]) * np.linalg.norm(w) * s
                 - 0.5 * np.dot(w, w) * s**2)
        assert (log_p >= bound - 1e-5 * np.abs(log_p)).all()


def test_defensive_base_bounds_the_price_of_a_row_that_breaks_a_pattern():
    """Column 1 copies column 0 up to noise 1e-3 of its scale, so the flow's
    conditional for it is narrow, and a row off that line, inside the training
    range, lands hundreds of scales out in the base. N(0, I) charges it
    ``u**2 / 2``; the defensive base at most the stated bound,
    ``log|det| + sum_i [log w - log s - log(2 pi) / 2 - u_i**2 / (2 s**2)]``."""
    rng = np.random.RandomState(0)
    x0 = rng.normal(size=600)
    X = np.column_stack([x0, x0 + 1e-3 * rng.normal(size=600), rng.normal(size=600)])
    stray = np.array([[0.0, 1.0, 0.0]])
    settings = dict(n_transforms=2, n_hidden_units=16, max_iter=40, random_state=0)
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for weight in (0.0, 1e-4):
            model = MAFDensity(tail_weight=weight, **settings).fit(X)
            scores[weight] = model.score_samples(stray)[0]
    x = torch.from_numpy((stray - model.shift_) / model.scale_)
    with torch.no_grad():
        u, log_det = model.module_(x)
    s, w = model.module_.base.tail_scale, 1e-4
    bound = (log_det + (np.log(w) - np.log(s) - 0.5 * np.log(2 * np.pi)
                        - 0.5 * (u / s) ** 2).sum(dim=1)).item() - np.log(model.scale_).sum()
    assert np.abs(u.numpy()).max() > 50  # the row is far out in the base
    assert scores[1e-4] >= bound - 1e-6 * abs(bound)
    assert scores[1e-4] > scores[0.0] + 1000  # N(0, I) charges it thousands of nats more
