"""Quantiles of one-dimensional conditional densities, by inverting their CDF.

A flow over one target is increasing in it (every step's scale and batch
norm's are positive), and so is its base's CDF, so the conditional CDF
``F(y | x) = F_base(f(y; x) | x)`` is increasing in y and its quantiles are
found by bisection to any tolerance: exact up to that tolerance, not a Monte
Carlo estimate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["invert_increasing"]

#: Bracket doublings before giving up (each doubles the width: 2**60 covers any
#: float64 target within reach of a fitted flow).
_MAX_DOUBLINGS = 60


def invert_increasing(function, targets: np.ndarray, tolerance: float,
                      start: float = 1.0) -> np.ndarray:
    """Solve ``function(z) = targets`` element-wise for an increasing ``function``.

    ``function`` maps an array of z (any shape, as ``targets``) to values of
    the same shape. The bracket ``[-start, start]`` is widened by doubling
    until it holds every solution, then halved until its width is below
    ``tolerance``; the midpoint is returned, within ``tolerance / 2`` of the
    solution.
    """
    low = np.full(targets.shape, -float(start))
    high = np.full(targets.shape, float(start))
    for _ in range(_MAX_DOUBLINGS):
        below, above = function(low) > targets, function(high) < targets
        if not (below.any() or above.any()):
            break
        width = high - low
        low = np.where(below, low - width, low)
        high = np.where(above, high + width, high)
    else:
        raise FloatingPointError("The conditional CDF did not bracket the requested "
                                 "quantiles: the model's tails are degenerate.")
    while np.max(high - low) > tolerance:
        middle = 0.5 * (low + high)
        at_most = function(middle) <= targets
        low = np.where(at_most, middle, low)
        high = np.where(at_most, high, middle)
    return 0.5 * (low + high)
