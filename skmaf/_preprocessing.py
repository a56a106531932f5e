"""Standardisation of the data, with the log-Jacobian it contributes to densities.

The model sees ``z = (x - shift) / scale``; densities in the user's units are
``log p(x) = log p(z) + log|det dz/dx| = log p(z) - sum(log scale)``.
All of it runs in float64 NumPy, so no precision is lost before the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """A fitted per-feature affine map ``z = (x - shift) / scale``."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Mean and standard deviation of each column of ``X``.

        A constant column gets scale 1 (as in scikit-learn's ``StandardScaler``)
        rather than a division by zero.
        """
        shift = X.mean(axis=0)
        scale = X.std(axis=0)
        constant = scale <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(shift), 1.0)
        scale[constant] = 1.0
        return cls(shift=shift, scale=scale)

    @property
    def log_det(self) -> float:
        """``log|det dz/dx|``, the same for every row."""
        return float(-np.sum(np.log(self.scale)))

    def forward(self, X: np.ndarray) -> np.ndarray:
        return (X - self.shift) / self.scale

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale + self.shift
