"""Log-density and sampling throughput per library, measured side by side.

``run.py`` times each library in its own process, one after another, so on a
shared machine a figure moves by up to 1.5x between runs. Here the libraries
score the same 10,000 rows, and draw 10,000 samples, in rounds (A B C ..., then
... C B A) inside one process, and each figure is the median over rounds. Each
model is the run.py architecture (K=5, L=2, H=100, no batch norm) after one epoch
of training on 2,000 rows (speed does not depend on the weights); each library
runs what run.py calls: ``MAFDensity.score_samples`` / ``sample`` for skmaf,
standardisation and ``log_prob`` on a float32 tensor / ``sample`` and
un-standardisation for the peers. Run:

    python benchmarks/side_by_side.py [--dims 2 10 16 27 62] [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import peers
import torch

#: Rows scored, and samples drawn, per call.
N_ROWS = 10_000


def skmaf_model(X_train):
    """``(score, sample)`` of a skmaf MAF."""
    from skmaf import MAFDensity

    model = MAFDensity(n_transforms=peers.K, n_hidden_layers=peers.L, n_hidden_units=peers.H,
                       batch_norm=False, max_iter=1, random_state=0).fit(X_train)
    return model.score_samples, lambda n: model.sample(n, random_state=0)


def torch_model(flow, log_prob, sample, X_train):
    """``(score, sample)`` of a peer's flow, in data units as in run.py."""
    standardization = peers.Standardization(X_train)
    flow.eval()

    @torch.no_grad()
    def score(X):
        values = log_prob(flow, standardization.forward(X))
        return values.double().numpy() + standardization.log_jacobian

    @torch.no_grad()
    def draw(n):
        return standardization.inverse(sample(flow, n))

    return score, draw


MODELS = {
    "skmaf": skmaf_model,
    "zuko": lambda X: torch_model(peers.zuko_maf(X.shape[1]),
                                  lambda flow, x: flow().log_prob(x),
                                  lambda flow, n: flow().sample((n,)), X),
    "nflows": lambda X: torch_model(peers.nflows_maf(X.shape[1], batch_norm=False),
                                    lambda flow, x: flow.log_prob(x),
                                    lambda flow, n: flow.sample(n), X),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 16, 27, 62])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.simplefilter("ignore")

    import run  # for the machine description

    print(f"{time.strftime('%Y-%m-%d')}, {run.machine()}, {args.threads} thread(s); "
          f"{N_ROWS:,} rows, median of {args.rounds} alternating rounds\n")
    print("| D | library | log-density rows/s | vs best peer | samples/s | vs best peer |")
    print("|---|---|---|---|---|---|")
    for n_features in args.dims:
        rng = np.random.RandomState(0)
        X_train, X = rng.normal(size=(2000, n_features)), rng.normal(size=(N_ROWS, n_features))
        models = {name: make(X_train) for name, make in MODELS.items()}
        rates = {(name, task): [] for name in models for task in (0, 1)}
        for round_ in range(args.rounds + 1):
            order = list(models) if round_ % 2 == 0 else list(models)[::-1]
            for name in order:
                for task, argument in ((0, X), (1, N_ROWS)):
                    start = time.perf_counter()
                    models[name][task](argument)
                    if round_:  # round 0 warms up
                        rates[name, task].append(N_ROWS / (time.perf_counter() - start))
        median = {key: statistics.median(values) for key, values in rates.items()}
        best = [max(median["zuko", task], median["nflows", task]) for task in (0, 1)]
        for name in models:
            density, sampling = median[name, 0], median[name, 1]
            print(f"| {n_features} | {name} | {density:,.0f} | {density / best[0]:.2f} "
                  f"| {sampling:,.0f} | {sampling / best[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
