"""What the bounded conditioners change: held-out rows scored with and without them.

For each shared set: the normal rows, shuffled (seed 0) and split 80/20, at most
12,500 training rows; a default estimator fitted on the training part (integer
columns dequantized by its default); then the test rows scored twice with the same
weights: as fitted (every network sees its inputs clamped to its layer's training
range, ``skmaf/flows/ranges.py``), and with those ranges made infinite (the networks
extrapolate, as before the change). Reported: mean and lowest test row, in the units
of the data standardised on the training part. Run:

    OMP_NUM_THREADS=1 python benchmarks/tails.py [--sets 32_shuttle ...] [--estimator maf]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from anomaly import available_sets, load_set


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--estimator", choices=("maf", "made-mog", "realnvp"), default="maf")
    parser.add_argument("--max-iter", type=int, default=None)
    args = parser.parse_args()

    import torch

    from skmaf import MADEMoGDensity, MAFDensity, RealNVPDensity
    from skmaf.flows.ranges import InputRange

    torch.set_num_threads(1)
    make = {"maf": MAFDensity, "made-mog": MADEMoGDensity, "realnvp": RealNVPDensity}
    print("| data | fit (s) | epochs | bounded: mean | bounded: lowest row "
          "| extrapolating: mean | extrapolating: lowest row |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets or available_sets():
        X, y = load_set(name)
        X = X[y == 0].astype(np.float64)
        X = X[np.random.RandomState(0).permutation(len(X))]
        n_train = int(0.8 * len(X))
        train, test = X[:n_train][:12_500], X[n_train:]
        # Log-densities in the units of the data standardised on the training part.
        spread = train.std(axis=0)
        offset = np.sum(np.log(np.where(spread > 0, spread, 1.0)))
        params = {"random_state": 0}
        if args.max_iter is not None:
            params["max_iter"] = args.max_iter
        model = make[args.estimator](**params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train)
        seconds = time.perf_counter() - start
        bounded = model.score_samples(test) + offset
        for module in model.module_.modules():
            if isinstance(module, InputRange):
                module.low.fill_(-np.inf)
                module.high.fill_(np.inf)
        model._set_module(model.module_)  # rebuild the accelerator's copies
        extrapolating = model.score_samples(test) + offset
        print(f"| {name} | {seconds:.0f} | {model.n_iter_} | {bounded.mean():.3f} | "
              f"{bounded.min():.4g} | {extrapolating.mean():.4g} | "
              f"{extrapolating.min():.4g} |", flush=True)


if __name__ == "__main__":
    main()
