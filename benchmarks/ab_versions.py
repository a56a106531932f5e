"""This checkout's skmaf against another version of it, side by side in one process.

On a shared machine a figure moves by 20% between two processes; alternating the
two versions round by round inside one process, and taking medians, cancels the
drift that a before/after pair of runs would carry. The other version is loaded
from its source tree as the package ``skmaf_baseline`` (skmaf imports itself only
relatively). Timed, at each D: one training step of the MAF and of the MAF with
batch norm (batch 256, K=5, L=2, H=100, the default training options: what
``micro.py`` times), and ``score_samples`` on 10,000 rows and ``sample`` of
10,000 rows of a MAF (K=5, L=2, H=100, no batch norm, one epoch on 2,000 rows,
fitted anew each round: what ``side_by_side.py`` times), and a whole default
``MAFDensity`` fit of 5 epochs on the same 2,000 rows. Run, e.g. against the
commit before the redesign:

    git worktree add /tmp/base 0b1a9ba
    python benchmarks/ab_versions.py --baseline /tmp/base [--dims 2 10 16 27 62]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import peers
import torch

BATCH = 256
N_ROWS = 10_000


def load_baseline(tree: Path):
    spec = importlib.util.spec_from_file_location(
        "skmaf_baseline", tree / "skmaf" / "__init__.py",
        submodule_search_locations=[str(tree / "skmaf")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["skmaf_baseline"] = module
    spec.loader.exec_module(module)
    return module


def steps(package, new: bool, n_features: int, batch_norm: bool):
    """The training step ``MAFDensity.fit`` runs, of one version."""
    flow = package.flows.build_maf(n_features, peers.K, peers.L, peers.H, batch_norm=batch_norm,
                                   generator=torch.Generator().manual_seed(0)).train()
    defaults = peers.Settings()
    common = dict(max_iter=1, batch_size=BATCH, learning_rate=defaults.learning_rate,
                  early_stopping=True, n_iter_no_change=1, tol=0.0,
                  ema_decay=defaults.ema_decay)
    if new:
        from skmaf._accelerated.step import AcceleratedStep
        from skmaf._training import TrainingOptions

        return AcceleratedStep(flow, TrainingOptions(l2_penalty=defaults.alpha, **common),
                               BATCH)
    options = package._training.TrainingOptions(alpha=defaults.alpha, **common)
    return package._training.TrainingStep(flow, options, BATCH)


def step_seconds(step, x, n_steps: int = 40) -> float:
    for _ in range(5):
        step(x)
    start = time.perf_counter()
    for _ in range(n_steps):
        step(x)
    return (time.perf_counter() - start) / n_steps


def call_seconds(function) -> float:
    function()
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="source tree of the other version (a git worktree)")
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 16, 27, 62])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--measures", nargs="+", default=["steps", "scoring", "fit"],
                        choices=["steps", "scoring", "fit"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import skmaf

    versions = {"baseline": load_baseline(args.baseline), "this": skmaf}
    print(f"{time.strftime('%Y-%m-%d')}; baseline {args.baseline}; medians of {args.rounds} "
          "rounds, the versions alternating\n")
    print("| D | measure | baseline | this | this / baseline (time) |")
    print("|---|---|---|---|---|")
    for n_features in args.dims:
        rng = np.random.RandomState(0)
        X_train = rng.normal(size=(2000, n_features)) @ rng.normal(size=(n_features, n_features))
        rows = rng.normal(size=(N_ROWS, n_features)) @ rng.normal(size=(n_features, n_features))
        x = torch.randn(BATCH, n_features)
        times = {}
        for round_ in range(args.rounds):
            order = list(versions) if round_ % 2 == 0 else list(versions)[::-1]
            for name in order:
                package, new = versions[name], name == "this"
                for batch_norm in ((False, True) if "steps" in args.measures else ()):
                    step = steps(package, new, n_features, batch_norm)
                    label = "step MAF+BN (ms)" if batch_norm else "step MAF (ms)"
                    times.setdefault((label, name), []).append(1e3 * step_seconds(step, x))
                    step.close()
                if "fit" in args.measures:
                    # A whole default fit, validation and batch-norm statistics included.
                    start = time.perf_counter()
                    package.MAFDensity(max_iter=5, early_stopping=True,
                                       random_state=0).fit(X_train)
                    times.setdefault(("fit 5 epochs (ms)", name), []).append(
                        1e3 * (time.perf_counter() - start))
                if "scoring" not in args.measures:
                    continue
                # Fitted anew each round, as the steps are built anew: where a model's
                # tensors land in memory moves its speed by up to 13% (micro.py).
                model = package.MAFDensity(n_transforms=peers.K, n_hidden_layers=peers.L,
                                           n_hidden_units=peers.H, batch_norm=False,
                                           max_iter=1, random_state=0).fit(X_train)
                times.setdefault(("score_samples 10k (ms)", name), []).append(
                    1e3 * call_seconds(lambda m=model, r=rows: m.score_samples(r)))
                times.setdefault(("sample 10k (ms)", name), []).append(
                    1e3 * call_seconds(lambda m=model: m.sample(N_ROWS, random_state=0)))
        for label in ("step MAF (ms)", "step MAF+BN (ms)", "fit 5 epochs (ms)",
                      "score_samples 10k (ms)", "sample 10k (ms)"):
            if (label, "this") not in times:
                continue
            old, new = (statistics.median(times[label, name]) for name in ("baseline", "this"))
            print(f"| {n_features} | {label} | {old:.2f} | {new:.2f} | {new / old:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
