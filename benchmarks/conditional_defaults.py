"""MAFRegressor's defaults for one target: how many base components, how many MADEs.

With one target every MADE step is affine in y, so the flow alone makes p(y | x)
Gaussian; non-Gaussian conditionals come from the mixture base (``n_components``).
This fits ``MAFRegressor`` at several ``n_components`` and ``n_transforms`` on two
problems with a known conditional density, and reports the held-out mean
log-likelihood against the truth and against the Gaussian with the true conditional
mean and variance, the coverage of the 5-95% interval and the fit time:

* ``skewed``: x ~ U(-2, 2), y = sin(2x) + (0.3 + 0.2 |x|) (E - 1), E ~ Exp(1);
* ``bimodal``: y | x ~ 0.7 N(sin 2x + 1, s^2) + 0.3 N(sin 2x - 1, s^2), s = 0.3 + 0.15 (x + 2).

Run: ``python benchmarks/conditional_defaults.py [--n-train 3000] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import stats


def skewed(n, rng):
    x = rng.uniform(-2, 2, n)
    scale = 0.3 + 0.2 * np.abs(x)
    y = np.sin(2 * x) + scale * (rng.exponential(size=n) - 1)
    log_p = stats.expon.logpdf((y - np.sin(2 * x)) / scale + 1) - np.log(scale)
    mean, variance = np.sin(2 * x), scale**2
    return x[:, None], y, log_p, stats.norm.logpdf(y, mean, np.sqrt(variance))


def bimodal(n, rng):
    x = rng.uniform(-2, 2, n)
    s = 0.3 + 0.15 * (x + 2)
    m = np.sin(2 * x)
    upper = rng.uniform(size=n) < 0.7
    y = m + np.where(upper, 1.0, -1.0) + s * rng.normal(size=n)
    log_p = np.log(0.7 * stats.norm.pdf(y, m + 1, s) + 0.3 * stats.norm.pdf(y, m - 1, s))
    mean, variance = m + 0.4, s**2 + 4 * 0.7 * 0.3
    return x[:, None], y, log_p, stats.norm.logpdf(y, mean, np.sqrt(variance))


PROBLEMS = {"skewed": skewed, "bimodal": bimodal}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--components", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--transforms", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import torch

    from skmaf import MAFRegressor

    torch.set_num_threads(1)
    extra = dict(max_iter=3, n_hidden_units=8) if args.quick else {}
    print("| problem | n_transforms | n_components | held-out LL - truth | vs right Gaussian "
          "| 90% coverage | epochs | fit (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in PROBLEMS.items():
        X, y, _, _ = make(args.n_train, np.random.RandomState(0))
        Xt, yt, truth, gaussian = make(2000, np.random.RandomState(1))
        for n_transforms in args.transforms:
            for n_components in args.components:
                model = MAFRegressor(n_transforms=n_transforms, n_components=n_components,
                                     random_state=0, **extra)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X, y)
                seconds = time.perf_counter() - start
                log_p = model.log_density(Xt, yt)
                low, high = model.predict_interval(Xt, 0.9).T
                coverage = np.mean((yt >= low) & (yt <= high))
                gap, edge = log_p - truth, log_p - gaussian
                print(f"| {name} | {n_transforms} | {n_components} | "
                      f"{gap.mean():.3f} ± {2 * gap.std() / np.sqrt(len(gap)):.3f} | "
                      f"{edge.mean():+.3f} ± {2 * edge.std() / np.sqrt(len(edge)):.3f} | "
                      f"{coverage:.3f} | {model.n_iter_} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
