"""The MAF paper's model comparison, on skmaf's estimators (issue 3's table).

Held-out mean log-likelihood ± 2 standard errors of Gaussian (one-component
GaussianMixture), MADE, MADE MoG, Real NVP (5), MAF (5) and MAF MoG (5) on the
paper's two-dimensional example and on real data sets. Run:

    OMP_NUM_THREADS=1 python benchmarks/model_family.py [--sets paper2d 22_magic.gamma]
"""

import argparse
import time
import warnings

import datasets
import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity

NET = dict(n_hidden_layers=1, n_hidden_units=100, random_state=0)

MODELS = {
    "Gaussian": lambda: GaussianMixture(1, covariance_type="full", random_state=0),
    "MADE": lambda: MADEMoGDensity(n_components=1, **NET),
    "MADE MoG (C=10)": lambda: MADEMoGDensity(n_components=10, **NET),
    "Real NVP (5)": lambda: RealNVPDensity(5, **NET),
    "MAF (5)": lambda: MAFDensity(5, **NET),
    "MAF MoG (5, C=10)": lambda: MAFDensity(5, n_components=10, **NET),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sets", nargs="+", default=["paper2d", "22_magic.gamma"])
    parser.add_argument("--max-rows", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print("| data | model | test log-lik ± 2 s.e. | median | epochs | fit (s) |")
    print("|---|---|---|---|---|---|")
    for name in args.sets:
        split = datasets.load(name, args.data_dir, max_rows=args.max_rows)
        if split.true_log_density is not None:
            mean, error = datasets.mean_and_error(split.true_log_density(split.test))
            print(f"| {name} | true density | {mean:.3f} ± {error:.3f} | | | |")
        X = np.vstack([split.train, split.validation])
        for label, make in MODELS.items():
            model = make()
            start = time.perf_counter()
            model.fit(X)
            elapsed = time.perf_counter() - start
            log_density = model.score_samples(split.test)
            mean, error = datasets.mean_and_error(log_density)
            print(f"| {name} | {label} | {mean:.3f} ± {error:.3f} | {np.median(log_density):.3f} "
                  f"| {getattr(model, 'n_iter_', '')} | {elapsed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
