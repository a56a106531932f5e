"""``MAFDensity``'s ``tail_weight`` on the shared real tables, paired against N(0, I).

The protocol of ``real_tables.py`` (the normal rows split 64/16/20 with the seed, at
most ``--max-rows`` training rows, skmaf fitted on the raw train + validation rows
with ``random_state=0``, log-likelihoods per test row in the standardised units).
Per set and weight: the mean test log-likelihood, the lowest test row, the paired
difference to ``tail_weight=0`` (the paper's N(0, I) base) ± 2 paired standard
errors, the fit's wall-clock and its epochs. Run:

    OMP_NUM_THREADS=1 python benchmarks/tail_weight.py [--weights 0 1e-4 1e-3 1e-2]
        [--sets 6_cardio ...] [--data-dir ../shared/data] [--max-rows 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings
from types import SimpleNamespace

import numpy as np
import real_tables
import torch
from anomaly import available_sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 1e-4, 1e-3, 1e-2])
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights = sorted(set(args.weights) | {0.0})
    sets = args.sets or available_sets(args.data_dir)
    options = SimpleNamespace(max_iter=None, skmaf_input="raw")
    print("Each cell: mean test log-likelihood (lowest row; paired difference to "
          "tail_weight=0 ± 2 s.e.; fit s / epochs)\n")
    print("| data | " + " | ".join(f"tail_weight={w:g}" for w in weights) + " |")
    print("|---|" + "---|" * len(weights))
    for name in sets:
        tables = real_tables.prepare(name, args.data_dir, args.seed, args.max_rows)
        log_likelihoods, cells = {}, []
        for weight in weights:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                log_likelihoods[weight], info = real_tables.fit_skmaf(
                    "MAFDensity", tables, options, tail_weight=weight)
            seconds = time.perf_counter() - start
            values = log_likelihoods[weight]
            difference = values - log_likelihoods[0.0]
            error = 2 * difference.std(ddof=1) / np.sqrt(len(difference))
            cells.append(f"{values.mean():.3f} ({values.min():.0f}; "
                         f"{difference.mean():+.3f} ± {error:.3f}; "
                         f"{seconds:.0f} s / {info['epochs']})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
