"""How many refits, and how much trimming, for DensityOutlierDetector's MAF.

``anomaly.py``'s splits and settings; for each set, one ``MAFDensity(random_state=0)``
fitted on the training rows, then refitted on the rows above the ``q`` quantile of
its own log-densities of the training rows, twice, for q = 0.10 and 0.25. Prints
each fit's ROC-AUC on the scored rows, and the means. Run (one setting per process):

    OMP_NUM_THREADS=1 python benchmarks/anomaly_refits.py unsupervised [SET ...]
    OMP_NUM_THREADS=1 python benchmarks/anomaly_refits.py novelty [SET ...]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from anomaly import available_sets, load_set, split_indices
from sklearn.metrics import roc_auc_score


def main():
    import torch

    from skmaf import MAFDensity

    torch.set_num_threads(1)
    setting, sets = sys.argv[1], sys.argv[2:] or available_sets()
    results = {}
    for name in sets:
        X, y = load_set(name)
        fit_rows, score_rows = split_indices(y, setting, 0, 10_000)
        X_fit, X_score, y_score = X[fit_rows].astype(float), X[score_rows].astype(float), \
            y[score_rows]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = MAFDensity(random_state=0).fit(X_fit)
            aucs = {"none": roc_auc_score(y_score, -first.score_samples(X_score))}
            for trim in (0.1, 0.25):
                model = first
                for refit in (1, 2):
                    log_density = model.score_samples(X_fit)
                    kept = log_density > np.quantile(log_density, trim)
                    model = MAFDensity(random_state=0).fit(X_fit[kept])
                    aucs[f"trim {trim}, {refit} refit(s)"] = roc_auc_score(
                        y_score, -model.score_samples(X_score))
        results[name] = aucs
        print(setting, name, {k: round(v, 3) for k, v in aucs.items()},
              f"{time.perf_counter() - start:.0f} s", flush=True)
    means = {k: round(float(np.mean([r[k] for r in results.values()])), 3)
             for k in next(iter(results.values()))}
    print(setting, "mean", means)


if __name__ == "__main__":
    main()
