"""Time to a good model: whole default fits, this checkout against another version.

For every shared set (normal rows, integer columns dequantized by ``datasets.py``,
80/10/10 split, at most ``--max-rows`` rows) and the paper's 2-D example at 20,000
rows: each estimator with its defaults (``random_state=0``) fitted on the training and
validation parts (its own early stopping splits them again), timed as a whole, then
scored on the test part. The other version is loaded from its source tree as the
package ``skmaf_baseline`` (as ``ab_versions.py`` does) and the two alternate, set by
set, so that drift on a shared machine hits both alike. Reported per set: wall-clock,
epochs, whether the fit ended with a ``ConvergenceWarning``, the held-out mean
log-likelihood ± 2 s.e., and the paired difference of the two versions on the same
test rows ± 2 s.e.; then the median wall-clock ratio. Run, e.g. against the main of
the speed issue:

    git worktree add /tmp/base 0b1a9ba
    OMP_NUM_THREADS=1 python benchmarks/time_to_quality.py --baseline /tmp/base \\
        [--estimators MAFDensity MADEMoGDensity] [--sets paper2d 6_cardio ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import datasets
import numpy as np
from ab_versions import load_baseline
from sklearn.exceptions import ConvergenceWarning

PAPER2D_ROWS = 20_000


def fit_and_score(package, estimator: str, split) -> dict:
    model = getattr(package, estimator)(random_state=0)
    rows = np.vstack([split.train, split.validation])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(rows)
        seconds = time.perf_counter() - start
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"seconds": seconds, "epochs": model.n_iter_, "converged": converged,
            "log_density": model.score_samples(split.test)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="source tree of the other version")
    parser.add_argument("--estimators", nargs="+", default=["MAFDensity"])
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-rows", type=int, default=12_500)
    args = parser.parse_args()

    import torch

    import skmaf

    torch.set_num_threads(1)
    versions = {"before": load_baseline(args.baseline), "after": skmaf}
    sets = args.sets or ["paper2d", *datasets.available(args.data_dir)]
    print("| estimator | data | before: fit (s) / epochs / converged | after: fit (s) / "
          "epochs / converged | before: test LL | after: test LL | after - before "
          "± 2 paired s.e. |")
    print("|---|---|---|---|---|---|---|")
    for estimator in args.estimators:
        ratios = []
        for index, name in enumerate(sets):
            rows = PAPER2D_ROWS if name == "paper2d" else args.max_rows
            split = datasets.load(name, args.data_dir, max_rows=rows)
            order = ["before", "after"] if index % 2 == 0 else ["after", "before"]
            results = {version: fit_and_score(versions[version], estimator, split)
                       for version in order}
            before, after = results["before"], results["after"]
            ratios.append(after["seconds"] / before["seconds"])
            difference = after["log_density"] - before["log_density"]

            def fit_cell(result):
                return (f"{result['seconds']:.1f} / {result['epochs']} / "
                        f"{'yes' if result['converged'] else 'no'}")

            def ll_cell(result):
                mean, error = datasets.mean_and_error(result["log_density"])
                return f"{mean:.3f} ± {error:.3f}"

            print(f"| {estimator} | {name} | {fit_cell(before)} | {fit_cell(after)} | "
                  f"{ll_cell(before)} | {ll_cell(after)} | {difference.mean():+.3f} ± "
                  f"{2 * difference.std() / np.sqrt(len(difference)):.3f} |", flush=True)
        print(f"\n{estimator}: median wall-clock after / before "
              f"{statistics.median(ratios):.3f}\n", flush=True)


if __name__ == "__main__":
    main()
