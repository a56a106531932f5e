"""What the examples share: quick mode, where figures go, real data and tables.

Not part of skmaf. Every example takes the same arguments:

``--quick``
    Tiny networks, few epochs and few rows, so that the example runs in seconds
    (the test suite runs every example this way). The environment variable
    ``SKMAF_EXAMPLES_QUICK=1`` does the same.
``--output DIR``
    Where the PNG figures go; default ``examples/output`` (not tracked by git),
    or the environment variable ``SKMAF_EXAMPLES_OUTPUT``. The README's figures
    in ``examples/figures`` are made with ``--output examples/figures``.
``--data-dir DIR``
    A folder of ``NAME.npz`` files holding ``X`` and ``y`` (1 = anomaly), such as
    the ADBench sets in ``../shared/data``. Without it the examples fall back to
    data bundled with scikit-learn, so they run on any machine.
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

EXAMPLES_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT_DIR = EXAMPLES_DIR / "output"
# The workplace keeps shared data beside the repository: <repo>/../shared/data.
DEFAULT_DATA_DIR = EXAMPLES_DIR.parents[1] / "shared" / "data"

QUICK_ENV = "SKMAF_EXAMPLES_QUICK"
OUTPUT_ENV = "SKMAF_EXAMPLES_OUTPUT"

#: Share of anomalies kept in the breast-cancer fallback, close to ADBench's sets.
FALLBACK_ANOMALY_FRACTION = 0.05


@dataclass(frozen=True)
class Settings:
    quick: bool
    output_dir: Path
    data_dir: Path


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray  # 1 = anomaly, 0 = normal


def example_settings(description: str | None) -> Settings:
    """Read the command line and environment; in quick mode, silence ConvergenceWarning.

    ``description`` is the example's docstring, for ``--help`` (None when the
    example runs cell by cell). Quick mode stops training after a few epochs on
    purpose, so the warning that training has not converged would only be noise.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny models and data, for tests (or set {QUICK_ENV}=1)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"folder for the figures (default: ${OUTPUT_ENV} or "
                             "examples/output)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder of NAME.npz files (default: ../shared/data)")
    # parse_known_args, not parse_args: run cell by cell in Jupyter, the kernel's
    # own arguments are in sys.argv.
    args, _ = parser.parse_known_args()

    quick = args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0")
    output_dir = args.output or Path(os.environ.get(OUTPUT_ENV) or DEFAULT_OUTPUT_DIR)
    output_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    return Settings(quick=quick, output_dir=output_dir, data_dir=args.data_dir)


def load_normal_rows(name: str, data_dir: Path, max_rows: int, random_state=0) -> Dataset:
    """The normal rows (``y == 0``) of ``data_dir/name.npz``, at most ``max_rows``.

    Falls back to scikit-learn's digits (8x8 images, integer pixels) when the
    file is missing. Integer-valued columns are left as they are: see
    :func:`dequantize`.
    """
    path = Path(data_dir) / f"{name}.npz"
    if path.exists():
        data = np.load(path)
        X = data["X"][data["y"] == 0].astype(np.float64)
    else:
        print(f"{path} not found: using scikit-learn's digits instead.")
        name, X = "digits", load_digits().data
    X = _subsample(X, max_rows, check_random_state(random_state))
    return Dataset(name, X, np.zeros(len(X), dtype=int))


def load_labelled_rows(name: str, data_dir: Path, max_rows: int, random_state=0) -> Dataset:
    """All rows of ``data_dir/name.npz`` with their labels, at most ``max_rows``.

    Falls back to scikit-learn's breast-cancer data when the file is missing:
    the benign tumours are the normal rows, and a random 5% of the rows are
    malignant ones, the anomalies.
    """
    rng = check_random_state(random_state)
    path = Path(data_dir) / f"{name}.npz"
    if path.exists():
        data = np.load(path)
        X, y = data["X"].astype(np.float64), data["y"].astype(int)
    else:
        print(f"{path} not found: using scikit-learn's breast cancer data instead.")
        name, (X, y) = "breast_cancer", _rare_malignant_tumours(rng)
    rows = _subsample(np.arange(len(X)), max_rows, rng)
    return Dataset(name, X[rows], y[rows])


def _rare_malignant_tumours(rng) -> tuple[np.ndarray, np.ndarray]:
    X, target = load_breast_cancer(return_X_y=True)
    malignant = target == 0  # scikit-learn codes malignant as 0, benign as 1
    n_benign = np.count_nonzero(~malignant)
    n_kept = round(n_benign * FALLBACK_ANOMALY_FRACTION / (1 - FALLBACK_ANOMALY_FRACTION))
    kept = rng.choice(np.flatnonzero(malignant), n_kept, replace=False)
    rows = np.concatenate([np.flatnonzero(~malignant), kept])
    return X[rows], malignant[rows].astype(int)


def _subsample(rows: np.ndarray, max_rows: int, rng) -> np.ndarray:
    if len(rows) <= max_rows:
        return rows
    return rows[np.sort(rng.choice(len(rows), max_rows, replace=False))]


def dequantize(X, random_state=0) -> np.ndarray:
    """Add uniform noise in [0, 1) to every integer-valued column.

    A continuous density fitted to integer data puts spikes on the integers and
    its log-likelihood grows without bound; the MAF paper dequantizes this way.
    """
    rng = check_random_state(random_state)
    X = np.array(X, dtype=np.float64)
    integer = np.all(X == np.round(X), axis=0)
    X[:, integer] += rng.uniform(size=(len(X), np.count_nonzero(integer)))
    return X


def mean_with_error(log_density) -> str:
    """Mean log-density and two standard errors, as the MAF paper reports them."""
    log_density = np.asarray(log_density)
    error = 2 * log_density.std() / np.sqrt(len(log_density))
    return f"{log_density.mean():.2f} ± {error:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def save_figure(figure, settings: Settings, name: str) -> Path:
    """Save ``figure`` as ``name.png`` in the output folder, close it, print the path."""
    path = settings.output_dir / f"{name}.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    print(f"saved {path}")
    return path
