"""Held-out log-likelihood of MAFDensity variants, over data sets and seeds.

Each variant is a set of ``MAFDensity`` parameters on top of the benchmark's
"skmaf MAF+BN" (K=5, L=2, H=100, batch norm), fitted as ``run.py`` fits it
(``peers.Settings``: MAFDensity's batch size, learning rate, patience and
tolerance, ``--max-iter`` epochs, the same splits). It prints, for each data set, the
test mean log-likelihood of every variant averaged over the seeds (and per seed),
next to reference models of ``run.py`` fitted once. This is how the choices that are
not defaults were measured (benchmarks/README.md, "Tried and not adopted"). Run:

    python benchmarks/variants.py --variants '{}' '{"alpha": 10}' \\
        '{"input_order": "random"}' [--sets 30_satellite digits] [--seeds 0 1 2] \\
        [--references GaussianMixture] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings

import datasets
import numpy as np
import peers
import torch


def variant_model(parameters: dict):
    """run.py's "skmaf MAF+BN" with ``parameters`` in place of its own where they overlap."""
    return peers.skmaf_model("MAFDensity", **{**peers.MAF, "batch_norm": True, **parameters})


def test_mean(make_model, split, settings) -> float:
    model = make_model(settings).fit(split)
    return float(np.mean(model.log_density(split.test)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["{}"],
                        help="MAFDensity parameters as JSON, one object per variant")
    parser.add_argument("--sets", nargs="+", default=None, help="default: every set")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--references", nargs="*", default=["GaussianMixture"],
                        help="models of run.py to fit once per set (seed 0)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--max-rows", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    variants = [json.loads(text) for text in args.variants]

    labels = args.references + [json.dumps(v) for v in variants]
    print(f"| data | {' | '.join(labels)} |")
    print(f"|---|{'---|' * len(labels)}")
    for name in args.sets or ["paper2d", "digits"] + datasets.available(args.data_dir):
        split = datasets.load(name, args.data_dir, max_rows=args.max_rows)
        reference_settings = peers.Settings(args.max_iter, seed=0)
        cells = [f"{test_mean(peers.MODELS[reference], split, reference_settings):.3f}"
                 for reference in args.references]
        for parameters in variants:
            per_seed = [test_mean(variant_model(parameters), split,
                                  peers.Settings(args.max_iter, seed=seed))
                        for seed in args.seeds]
            cells.append(f"{statistics.mean(per_seed):.3f} "
                         f"({', '.join(f'{value:.2f}' for value in per_seed)})")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
