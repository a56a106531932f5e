"""What the defensive base costs: ``MAFDensity`` at ``tail_weight=0`` (N(0, I)) against
its default (``(1 - w) N(0, I) + w N(0, 10**2 I)``), same architecture and weights.

Per width D: the training step (the accelerator's hand-written backward pass at
batch 256, the default MAF's shapes), ``score_samples`` on 20,000 rows and
``sample`` of 20,000 rows, each the median of ``--rounds`` rounds that alternate
the two bases, so that drift on a shared machine hits both alike. The two
estimators share the fitted flow (fitted once, 2 epochs: speed does not depend on
the weights), so only the base differs. Run:

    OMP_NUM_THREADS=1 python benchmarks/defensive_base.py [--dims 2 10 62] [--rounds 11]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import numpy as np
import torch

from skmaf import MAFDensity
from skmaf._accelerated.manual_backward import ManualBackward
from skmaf.flows import StandardNormal

ROWS, BATCH = 20_000, 256


def _seconds(function, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def _models(n_features: int):
    """The default MAF fitted briefly, and a copy whose base is N(0, I)."""
    X = np.random.RandomState(0).normal(size=(2_000, n_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        defensive = MAFDensity(max_iter=2, random_state=0).fit(X)
    gaussian = copy.deepcopy(defensive)
    gaussian.module_.base = StandardNormal(n_features)
    gaussian.set_params(tail_weight=0.0)
    gaussian._set_module(gaussian.module_)
    return {"N(0, I)": gaussian, "defensive": defensive}


def _step(model, n_features):
    """One loss-and-gradient evaluation of the hand-written pass, float32, batch 256."""
    flow = copy.deepcopy(model.module_).float().train()
    gradients = {p: torch.empty_like(p) for p in flow.parameters()}
    backward = ManualBackward(flow, gradients)
    x = torch.randn(BATCH, n_features, generator=torch.Generator().manual_seed(0))
    return lambda: backward(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 62])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| D | what | N(0, I) | defensive | ratio |")
    print("|---|---|---|---|---|")
    for n_features in args.dims:
        models = _models(n_features)
        X = np.random.RandomState(1).normal(size=(ROWS, n_features))
        tasks = {
            "training step (ms)": {name: _step(m, n_features) for name, m in models.items()},
            "score_samples (ms, 20k rows)": {
                name: (lambda m=m, X=X: m.score_samples(X)) for name, m in models.items()},
            "sample (ms, 20k rows)": {
                name: (lambda m=m: m.sample(ROWS, random_state=0)) for name, m in models.items()},
        }
        for task, functions in tasks.items():
            repeats = 20 if task.startswith("training") else 1
            for function in functions.values():  # warm-up
                function()
            times = {name: [] for name in functions}
            for _ in range(args.rounds):
                for name, function in functions.items():
                    times[name].append(_seconds(function, repeats) * 1e3)
            medians = {name: statistics.median(values) for name, values in times.items()}
            print(f"| {n_features} | {task} | {medians['N(0, I)']:.2f} | "
                  f"{medians['defensive']:.2f} | "
                  f"{medians['defensive'] / medians['N(0, I)']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
