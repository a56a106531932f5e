"""Wall-clock of the speed issue's grid search, with the estimator's defaults.

``GridSearchCV(MAFDensity(random_state=0), {"n_transforms": [3, 5],
"n_hidden_units": [50, 100]}, cv=3, n_jobs=-1)`` on 10,000 rows x 10 features (the
normal rows of the shared ``22_magic.gamma`` set, integer columns dequantized by
``datasets.py``), scored by the estimator's own ``score`` (mean log-likelihood).
Prints the wall-clock, the best candidate and its mean cross-validated score.

The version measured is the ``skmaf`` that Python imports: run it once as it is
and once with another version's source tree first on the path (joblib's worker
processes get the same path), alternating, e.g.

    git worktree add /tmp/base 0b1a9ba
    PYTHONPATH=/tmp/base python benchmarks/grid_search_time.py
    python benchmarks/grid_search_time.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import datasets
import numpy as np
from sklearn.model_selection import GridSearchCV

import skmaf

GRID = {"n_transforms": [3, 5], "n_hidden_units": [50, 100]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-set", default="22_magic.gamma")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    split = datasets.load(args.data_set, args.data_dir, max_rows=2 * args.rows)
    X = np.vstack([split.train, split.validation, split.test])[:args.rows]
    search = GridSearchCV(skmaf.MAFDensity(random_state=0), GRID, cv=3, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        search.fit(X)
        seconds = time.perf_counter() - start
    print(f"skmaf from {skmaf.__file__}")
    print("| rows x features | wall-clock (s) | best | mean CV log-likelihood |")
    print("|---|---|---|---|")
    print(f"| {X.shape[0]} x {X.shape[1]} | {seconds:.1f} | {search.best_params_} | "
          f"{search.best_score_:.3f} |")


if __name__ == "__main__":
    main()
