"""Helpers shared by the tests: tiny settings and data with known densities."""

import inspect

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity

#: ``parametrize_with_checks``'s strictness about expected failures, where this
#: scikit-learn has it (1.8 and later): no check is expected to fail, and one listed
#: later must fail. Older versions, which setup.cfg admits, have no such argument.
STRICT_XFAIL = ({"xfail_strict": True}
                if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters
                else {})

#: The smallest MAF worth testing: it trains in tens of milliseconds.
TINY = dict(n_transforms=2, n_hidden_units=8, max_iter=5, random_state=0)
_TINY_NET = dict(n_hidden_units=8, max_iter=5, random_state=0)


def tiny_estimators():
    """One tiny, unfitted instance of every model family, in the paper's order."""
    return [
        MADEMoGDensity(n_components=3, **_TINY_NET),
        RealNVPDensity(n_transforms=2, **_TINY_NET),
        MAFDensity(**TINY),
        MAFDensity(n_components=3, **TINY),
    ]


def estimator_id(estimator):
    name = type(estimator).__name__
    if isinstance(estimator, MAFDensity) and estimator.n_components > 1:
        return "MAF-MoG"
    return name


def paper_example(n_samples, random_state):
    """The MAF paper's first example: x2 ~ N(0, 4), x1 | x2 ~ N(x2**2 / 4, 1).

    Returns X with columns (x1, x2) and the true log-density of each row.
    """
    rng = np.random.RandomState(random_state)
    x2 = rng.normal(0.0, 2.0, n_samples)
    x1 = rng.normal(x2**2 / 4, 1.0)
    log_p = (
        -0.5 * (x2 / 2.0) ** 2 - np.log(2.0) - 0.5 * (x1 - x2**2 / 4) ** 2 - np.log(2 * np.pi)
    )
    return np.column_stack([x1, x2]), log_p
