"""Standardisation of the data, with the log-Jacobian it contributes to densities.

The model sees ``z = (x - shift) / scale``; densities in the user's units are
``log p(x) = log p(z) + log|det dz/dx| = log p(z) - sum(log scale)``.
All of it runs in float64 NumPy, so no precision is lost before the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RunningMoments", "Standardizer"]


#: A column whose standard deviation is at most this many float64 epsilons of its
#: mean's magnitude is constant up to rounding (scikit-learn's relative test).
CONSTANT_BELOW_EPSILONS = 10


@dataclass(frozen=True)
class Standardizer:
    """A fitted per-feature affine map ``z = (x - shift) / scale``.

    ``constant`` marks the columns treated as constant (scale 1).
    """

    shift: np.ndarray
    scale: np.ndarray
    constant: np.ndarray | None = None

    @classmethod
    def from_moments(cls, mean: np.ndarray, var: np.ndarray) -> Standardizer:
        """Shift by the mean and scale by the standard deviation of each column.

        A column that is constant up to float64 rounding, relative to its own
        magnitude (a column of values near 1e-15 that vary is not constant),
        gets scale 1 (as in scikit-learn's ``StandardScaler``) rather than a
        division by (nearly) zero.
        """
        scale = np.sqrt(var)
        constant = scale <= CONSTANT_BELOW_EPSILONS * np.finfo(np.float64).eps * np.abs(mean)
        constant |= scale == 0
        scale[constant] = 1.0
        return cls(shift=mean, scale=scale, constant=constant)

    @property
    def log_det(self) -> float:
        """``log|det dz/dx|``, the same for every row."""
        return float(-np.sum(np.log(self.scale)))

    def forward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.shift) / self.scale


@dataclass(frozen=True)
class RunningMoments:
    """Row count, mean and (biased) variance of each column of the rows seen so far.

    Immutable: :meth:`updated` returns a new object, so an estimator that fails
    half-way through ``partial_fit`` still holds the moments from before the call.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> moments = RunningMoments.of(X[:2]).updated(X[2:])
    >>> moments.n_samples, moments.mean.tolist(), moments.var.tolist()
    (6, [5.0, 6.0], [11.666666666666666, 11.666666666666666])
    """

    n_samples: int
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> RunningMoments:
        # An overflow gives inf, which the estimator reports as such.
        with np.errstate(over="ignore", invalid="ignore"):
            return cls(X.shape[0], X.mean(axis=0), X.var(axis=0))

    def updated(self, X: np.ndarray) -> RunningMoments:
        """The moments of the rows seen so far and the rows of ``X`` together.

        Chan, Golub & LeVeque's pairwise update, in float64: exact up to rounding
        for any split of the rows, with none of the cancellation of a running
        sum of squares.
        """
        chunk = RunningMoments.of(X)
        n_samples = self.n_samples + chunk.n_samples
        with np.errstate(over="ignore", invalid="ignore"):
            return self._combined(chunk, n_samples)

    def _combined(self, chunk: RunningMoments, n_samples: int) -> RunningMoments:
        delta = chunk.mean - self.mean
        mean = self.mean + delta * (chunk.n_samples / n_samples)
        sum_of_squares = (
            self.var * self.n_samples
            + chunk.var * chunk.n_samples
            + delta**2 * (self.n_samples * chunk.n_samples / n_samples)
        )
        return RunningMoments(n_samples, mean, sum_of_squares / n_samples)

    def standardizer(self) -> Standardizer:
        return Standardizer.from_moments(self.mean, self.var)
