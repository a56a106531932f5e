"""MAFRegressor's training: its defaults against the adaptive schedule, paired per row.

``conditional.py --training schedule`` reports each run's figures; this script puts
the two side by side on the same test rows, for the regression sets of
``conditional.py`` (same splits and seeds): for each variant of the training options,
the fit's wall-clock and epochs, and the mean paired difference of held-out
``log p(y | x)`` to the defaults' ± 2 paired standard errors. The variants: the
schedule of ``MAFDensity`` (``learning_rate="adaptive"``, ``batch_size`` and
``learning_rate_init`` ``"auto"``, patience 5, ``max_iter=500``), the same at
patience 10, and at patience 10 with the defaults' batch of 100 and step of 1e-3.
Run:

    OMP_NUM_THREADS=1 python benchmarks/conditional_schedule.py [--sets skewed magic_gamma]
        [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings

import conditional
import numpy as np
import torch

VARIANTS = {
    "defaults": {},
    "schedule": conditional.SCHEDULE,
    "schedule, patience 10": {**conditional.SCHEDULE, "n_iter_no_change": 10},
    "schedule, patience 10, batch 100, step 1e-3": {
        **conditional.SCHEDULE, "n_iter_no_change": 10, "batch_size": 100,
        "learning_rate_init": 1e-3},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(conditional.REGRESSION_SETS),
                        choices=list(conditional.REGRESSION_SETS))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    options = argparse.Namespace(max_iter=None, max_rows=10000, gp_max_rows=2000, seed=0,
                                 data_dir=args.data_dir, training="defaults", quick=False)
    from skmaf import MAFRegressor

    print(f"torch {torch.__version__}, 1 thread\n")
    print("| data | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name in args.sets:
        data = conditional.regression_set(name, options)
        cells, reference = [], None
        for params in VARIANTS.values():
            start = time.perf_counter()
            model = MAFRegressor(**{**conditional.skmaf_params(options), **params})
            model.fit(data.X_train, data.y_train)
            seconds = time.perf_counter() - start
            log_density = model.log_density(data.X_test, data.y_test)
            cell = f"{seconds:.1f} s / {model.n_iter_}"
            if reference is None:
                reference = log_density
                cell += f", {log_density.mean():.3f}"
            else:
                difference = log_density - reference
                two_se = 2 * difference.std(ddof=1) / np.sqrt(len(difference))
                cell += f", {difference.mean():+.3f} ± {two_se:.3f}"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
