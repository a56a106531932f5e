"""Where MAFDensity's training defaults come from.

Compares learning rates and patiences at the default architecture on a few
data sets: held-out log-likelihood, epochs and fit time. Run:

    OMP_NUM_THREADS=1 python benchmarks/defaults.py [--data-dir ../shared/data]
"""

import argparse
import time
import warnings

import datasets
import numpy as np
import torch

from skmaf import MAFDensity

CONFIGS = {
    "lr 1e-3, patience 10": dict(learning_rate_init=1e-3, n_iter_no_change=10, max_iter=200),
    "lr 1e-3, patience 20": dict(learning_rate_init=1e-3, n_iter_no_change=20, max_iter=200),
    "lr 1e-3, patience 30": dict(learning_rate_init=1e-3, n_iter_no_change=30, max_iter=200),
    "lr 1e-4, patience 30 (paper)": dict(learning_rate_init=1e-4, n_iter_no_change=30,
                                         max_iter=1000),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sets", nargs="+", default=["paper2d", "38_thyroid", "digits"])
    parser.add_argument("--max-rows", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print("| data | config | test log-lik ± 2 s.e. | epochs | fit time (s) |")
    print("|---|---|---|---|---|")
    for name in args.sets:
        split = datasets.load(name, args.data_dir, max_rows=args.max_rows)
        X = np.vstack([split.train, split.validation])
        for label, config in CONFIGS.items():
            model = MAFDensity(random_state=0, **config)
            start = time.perf_counter()
            model.fit(X)
            elapsed = time.perf_counter() - start
            mean, error = datasets.mean_and_error(model.score_samples(split.test))
            print(f"| {name} | {label} | {mean:.3f} ± {error:.3f} | {model.n_iter_} "
                  f"| {elapsed:.0f} |", flush=True)


if __name__ == "__main__":
    main()
