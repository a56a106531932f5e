"""Data sets for benchmarks and examples, split and preprocessed the same way everywhere.

* ``paper2d``: the MAF paper's first example, with its true log-density.
* ``digits``: scikit-learn's bundled digits, dequantized (runs anywhere).
* any ``NAME.npz`` in a data directory holding ``X`` and ``y`` (1 = anomaly), e.g.
  ``../shared/data``: the normal rows (``y == 0``), integer-valued columns dequantized.

Every set is split 80/10/10 with a fixed seed. Values stay in the data's own units
(each model standardises internally); ``standardize=True`` standardises on the
training part for libraries that do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Split:
    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    true_log_density: object = None  # callable for synthetic sets, else None

    @property
    def n_features(self) -> int:
        return self.train.shape[1]


def paper2d_log_density(X):
    x1, x2 = X[:, 0], X[:, 1]
    return -0.5 * (x2 / 2) ** 2 - np.log(2.0) - 0.5 * (x1 - x2**2 / 4) ** 2 - np.log(2 * np.pi)


def paper2d(n_samples, random_state):
    rng = random_state if isinstance(random_state, np.random.RandomState) else \
        np.random.RandomState(random_state)
    x2 = rng.normal(0.0, 2.0, n_samples)
    return np.column_stack([rng.normal(x2**2 / 4, 1.0), x2])


def dequantize(X, rng):
    """Add U[0, 1) noise to every integer-valued column (the MAF paper's practice)."""
    X = X.astype(np.float64).copy()
    integer = np.all(X == np.round(X), axis=0)
    X[:, integer] += rng.uniform(size=(X.shape[0], integer.sum()))
    return X


def _split(name, X, rng, true_log_density=None):
    index = rng.permutation(len(X))
    n_test = n_val = len(X) // 10
    test, val, train = np.split(X[index], [n_test, n_test + n_val])
    return Split(name, train, val, test, true_log_density)


def load(name: str, data_dir: Path | str | None = None, max_rows: int | None = None,
         random_state: int = 0, standardize: bool = False) -> Split:
    rng = np.random.RandomState(random_state)
    if name == "paper2d":
        split = _split(name, paper2d(max_rows or 10000, rng), rng, paper2d_log_density)
    elif name == "digits":
        from sklearn.datasets import load_digits

        split = _split(name, dequantize(load_digits().data, rng), rng)
    else:
        data = np.load(Path(data_dir or DEFAULT_DATA_DIR) / f"{name}.npz")
        X = data["X"][data["y"] == 0]
        if max_rows is not None and len(X) > max_rows:
            X = X[rng.choice(len(X), max_rows, replace=False)]
        split = _split(name, dequantize(X, rng), rng)
    if standardize:
        mean, std = split.train.mean(0), split.train.std(0)
        std[std == 0] = 1.0
        split.train, split.validation, split.test = (
            (part - mean) / std for part in (split.train, split.validation, split.test)
        )
    return split


def available(data_dir: Path | str | None = None) -> list[str]:
    directory = Path(data_dir or DEFAULT_DATA_DIR)
    return sorted(path.stem for path in directory.glob("*.npz"))


def mean_and_error(log_density):
    """Mean and two standard errors, the paper's way of reporting."""
    log_density = np.asarray(log_density)
    return log_density.mean(), 2 * log_density.std() / np.sqrt(len(log_density))
