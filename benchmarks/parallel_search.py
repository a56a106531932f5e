"""Wall time of one GridSearchCV with n_jobs=1 and with n_jobs=2 (joblib's loky and
threading backends), and the speed-up.

The grid, data and seeds are the same in every run, and so are the results
(checked). Each fit is a MAF on the paper's 2-D example (3,000 rows) with early
stopping, one to a few seconds long. The first loky run includes starting the
worker processes and importing torch in them; the second reuses those workers.
Run with the variable set, so that every fit gets one torch thread:

    OMP_NUM_THREADS=1 python benchmarks/parallel_search.py
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import datasets
import numpy as np
from joblib import cpu_count, parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skmaf import MAFDensity

GRID = {"n_hidden_units": [32, 64], "n_transforms": [2, 3]}
ESTIMATOR = MAFDensity(max_iter=30, n_iter_no_change=5, random_state=0)

RUNS = [  # (name, backend, n_jobs); loky reuses its workers from one run to the next
    ("n_jobs=1", "loky", 1),
    ("n_jobs=2, loky, starting its workers", "loky", 2),
    ("n_jobs=2, loky, workers running", "loky", 2),
    ("n_jobs=2, threading", "threading", 2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--cv", type=int, default=3)
    args = parser.parse_args()
    X = datasets.paper2d(args.rows, random_state=0)
    n_fits = args.cv * np.prod([len(values) for values in GRID.values()]) + 1

    print(f"{cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the runs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {n_fits} fits "
          f"({args.cv}-fold grid of {n_fits // args.cv} + refit), {args.rows} rows\n")
    print("| run | wall time (s) | speed-up |")
    print("|---|---|---|")
    with warnings.catch_warnings():  # torch's lazy initialisation is not part of a fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        MAFDensity(n_transforms=1, n_hidden_units=4, max_iter=1).fit(X[:100])
    reference = None
    for name, backend, n_jobs in RUNS:
        search = GridSearchCV(ESTIMATOR, GRID, cv=args.cv, n_jobs=n_jobs)
        with warnings.catch_warnings(), parallel_config(backend=backend):
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            search.fit(X)
            seconds = time.perf_counter() - start
        scores = search.cv_results_["mean_test_score"]
        if reference is None:
            reference = (seconds, scores)
        np.testing.assert_allclose(scores, reference[1], rtol=1e-12)
        print(f"| {name} | {seconds:.1f} | {reference[0] / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
