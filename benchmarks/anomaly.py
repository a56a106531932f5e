"""Anomaly detection with skmaf's densities against scikit-learn's detectors.

Every ``.npz`` set of the data directory (``X``, and ``y`` with 1 = anomaly) in two
settings:

* ``unsupervised``: all rows shuffled with the seed; the detector is fitted on one
  half (anomalies included, unlabelled) and scores the other half;
* ``novelty``: the detector is fitted on a random 60% of the normal rows and scores
  every remaining row (the other 40% of the normal rows and all anomalies).

Larger training parts are subsampled (with the seed) to ``--max-rows`` rows; the
scored part is never cut. The anomaly score is minus ``score_samples`` (higher is
more normal, as in scikit-learn); reported are ROC-AUC and average precision
(``sklearn.metrics``) per set and detector, their mean over the sets, the wall-clock
of each fit, and the warnings each fit and scoring raised (counted, not printed).
skmaf's estimators get the raw data (they standardise internally); scikit-learn's
detectors get data standardised with the training part's mean and standard deviation
(constant columns: scale 1). The detectors:

* ``MAFDensity``: ``DensityOutlierDetector(MAFDensity(random_state=0))``
* ``MADEMoGDensity``: ``DensityOutlierDetector(MADEMoGDensity(random_state=0))``
* ``MAFDensity(n_components=10)``: the same with the paper's MAF MoG (only when named
  in ``--detectors``)
* ``IsolationForest``: ``IsolationForest(random_state=0)``
* ``LocalOutlierFactor``: ``LocalOutlierFactor(novelty=True)``
* ``GaussianMixture``: ``DensityOutlierDetector(GaussianMixture(5, random_state=0))``

``--max-iter`` reaches skmaf's estimators only (default: their own). Run:

    OMP_NUM_THREADS=1 python benchmarks/anomaly.py [--sets 6_cardio 38_thyroid ...]
        [--detectors MAFDensity IsolationForest ...] [--settings unsupervised novelty]
        [--max-rows 10000] [--seed 0] [--max-iter N] [--data-dir ../shared/data]
        [--threads 1] [--quick] [--output benchmarks/anomaly.json]

``--quick`` (``--max-iter 3 --max-rows 500``) checks the script in a minute or so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTINGS = ("unsupervised", "novelty")
#: Share of the normal rows the novelty setting fits on.
NOVELTY_FIT_SHARE = 0.6
QUICK = {"max_iter": 3, "max_rows": 500}


# ------------------------------------------------------------------------ data
def load_set(name: str, data_dir: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (float64) and ``y`` (int, 1 = anomaly) of ``NAME.npz`` in ``data_dir``."""
    import datasets

    data = np.load(Path(data_dir or datasets.DEFAULT_DATA_DIR) / f"{name}.npz")
    return np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)


def available_sets(data_dir: Path | str | None = None) -> list[str]:
    import datasets

    return datasets.available(data_dir)


def standardisation(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each column of ``train``; constant columns get scale 1.

    Constant means every value equal (``np.ptp == 0``): the standard deviation of
    such a column can come out at 1e-16 rather than 0 by rounding.
    """
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale[(np.ptp(train, axis=0) == 0) | (scale == 0)] = 1.0
    return mean, scale


def split_indices(y: np.ndarray, setting: str, seed: int,
                  max_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(fit, score)`` of one setting; ``fit`` capped at ``max_rows``."""
    rng = np.random.RandomState(seed)
    if setting == "unsupervised":
        order = rng.permutation(len(y))
        half = len(y) // 2
        fit, score = order[:half], order[half:]
    elif setting == "novelty":
        normal = rng.permutation(np.flatnonzero(y == 0))
        n_fit = int(round(NOVELTY_FIT_SHARE * len(normal)))
        fit = normal[:n_fit]
        score = np.concatenate([normal[n_fit:], np.flatnonzero(y == 1)])
    else:
        raise ValueError(f"unknown setting {setting!r}")
    if max_rows is not None and len(fit) > max_rows:
        fit = rng.choice(fit, max_rows, replace=False)
    return fit, score


# ------------------------------------------------------------------- detectors
@dataclass(frozen=True)
class Detector:
    """``make(max_iter)`` builds the unfitted detector; ``standardise``: whether it
    gets data standardised on the training part (scikit-learn's) or raw (skmaf's)."""

    make: object
    standardise: bool


def _skmaf_detector(estimator_name: str, **settings):
    def make(max_iter):
        import skmaf

        params = {"random_state": 0, **settings}
        if max_iter is not None:
            params["max_iter"] = max_iter
        return skmaf.DensityOutlierDetector(getattr(skmaf, estimator_name)(**params))
    return make


def _isolation_forest(max_iter):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(random_state=0)


def _local_outlier_factor(max_iter):
    from sklearn.neighbors import LocalOutlierFactor

    return LocalOutlierFactor(novelty=True)


def _gaussian_mixture(max_iter):
    from sklearn.mixture import GaussianMixture

    from skmaf import DensityOutlierDetector

    return DensityOutlierDetector(GaussianMixture(5, random_state=0))


DETECTORS = {
    "MAFDensity": Detector(_skmaf_detector("MAFDensity"), standardise=False),
    "MADEMoGDensity": Detector(_skmaf_detector("MADEMoGDensity"), standardise=False),
    # The paper's MAF MoG; only when named in --detectors.
    "MAFDensity(n_components=10)": Detector(_skmaf_detector("MAFDensity", n_components=10),
                                            standardise=False),
    "IsolationForest": Detector(_isolation_forest, standardise=True),
    "LocalOutlierFactor": Detector(_local_outlier_factor, standardise=True),
    "GaussianMixture": Detector(_gaussian_mixture, standardise=True),
}

DEFAULT_DETECTORS = [name for name in DETECTORS if name != "MAFDensity(n_components=10)"]


def count_warnings(caught) -> dict[str, int]:
    """``{category name: count}`` of a ``warnings.catch_warnings(record=True)`` list."""
    return dict(sorted(Counter(w.category.__name__ for w in caught).items()))


def run_one(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, score_rows: np.ndarray,
            detector: Detector, max_iter: int | None) -> dict:
    """Fit one detector, score the held-out rows; ROC-AUC, AP, times and warnings."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    X_fit, X_score = X[fit_rows], X[score_rows]
    if detector.standardise:
        mean, scale = standardisation(X_fit)
        X_fit, X_score = (X_fit - mean) / scale, (X_score - mean) / scale
    result = {"n_fit": len(fit_rows), "n_score": len(score_rows),
              "n_anomalies_fit": int(y[fit_rows].sum()),
              "n_anomalies_score": int(y[score_rows].sum())}
    # Every warning is recorded (so none is printed, skmaf's DegenerateDataWarning
    # included) and counted per fit.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            model = detector.make(max_iter).fit(X_fit)
            result["fit_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            anomaly = -np.asarray(model.score_samples(X_score), dtype=np.float64)
            result["score_seconds"] = time.perf_counter() - start
        except Exception as error:  # a failed fit is a result too
            result["error"] = f"{type(error).__name__}: {error}"
    result["warnings"] = count_warnings(caught)
    if "error" in result:
        return result
    if hasattr(model, "estimator_") and hasattr(model.estimator_, "n_iter_"):
        result["epochs"] = int(model.estimator_.n_iter_)
    # A row the model cannot score (log-density -inf or nan) counts as the most
    # anomalous: rank it above every finite score.
    non_finite = ~np.isfinite(anomaly)
    result["non_finite_scores"] = int(non_finite.sum())
    if non_finite.any():
        finite = anomaly[~non_finite]
        top = finite.max() + 1.0 if finite.size else 0.0
        anomaly = np.where(non_finite, top, anomaly)
    truth = y[score_rows]
    result["roc_auc"] = float(roc_auc_score(truth, anomaly))
    result["average_precision"] = float(average_precision_score(truth, anomaly))
    return result


# --------------------------------------------------------------------- report
def _format(value, spec):
    return "" if value is None or not np.isfinite(value) else format(value, spec)


def _short_warnings(counts: dict[str, int]) -> str:
    return ", ".join(f"{name.removesuffix('Warning') or name} {count}"
                     for name, count in counts.items())


def table(results: list[dict], setting: str, sets: list[str], detectors: list[str],
          key: str, spec: str, mean_row: bool = True) -> str:
    """Markdown table of ``key``: sets as rows, detectors as columns."""
    found = {(r["data"], r["detector"]): r for r in results if r["setting"] == setting}
    lines = ["| data | " + " | ".join(detectors) + " |",
             "|---|" + "---|" * len(detectors)]
    columns = {name: [] for name in detectors}
    for set_name in sets:
        cells = []
        for name in detectors:
            result = found.get((set_name, name))
            if result is None:
                cells.append("")
            elif "error" in result:
                cells.append("failed")
            else:
                value = result.get(key)
                columns[name].append(value)
                cells.append(_format(value, spec))
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    if mean_row:
        cells = []
        for name in detectors:
            values = [v for v in columns[name] if v is not None]
            cell = _format(float(np.mean(values)), spec) if values else ""
            if values and len(values) < len(sets):
                cell += f" ({len(values)} sets)"
            cells.append(cell)
        lines.append("| mean | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def warnings_table(results: list[dict], setting: str, sets: list[str],
                   detectors: list[str]) -> str | None:
    found = {(r["data"], r["detector"]): r for r in results if r["setting"] == setting}
    if not any(found[key].get("warnings") or "error" in found[key] for key in found):
        return None
    lines = ["| data | " + " | ".join(detectors) + " |",
             "|---|" + "---|" * len(detectors)]
    for set_name in sets:
        cells = []
        for name in detectors:
            result = found.get((set_name, name), {})
            cell = _short_warnings(result.get("warnings", {}))
            if "error" in result:
                cell = (cell + "; " if cell else "") + result["error"].splitlines()[0][:80]
            cells.append(cell)
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rows_table(results: list[dict], setting: str, sets: list[str]) -> str:
    """The size of each set's fitted and scored parts (anomalies in brackets)."""
    first = {}
    for result in results:
        if result["setting"] == setting:
            first.setdefault(result["data"], result)
    lines = ["| data | D | fitted rows (anomalies) | scored rows (anomalies) |",
             "|---|---|---|---|"]
    for set_name in sets:
        r = first.get(set_name)
        if r is not None:
            lines.append(f"| {set_name} | {r['n_features']} | {r['n_fit']:,} "
                         f"({r['n_anomalies_fit']:,}) | {r['n_score']:,} "
                         f"({r['n_anomalies_score']:,}) |")
    return "\n".join(lines)


def report(results, settings, sets, detectors) -> str:
    parts = []
    for setting in settings:
        fit = ("a random half of all rows, anomalies unlabelled" if setting == "unsupervised"
               else f"a random {NOVELTY_FIT_SHARE:.0%} of the normal rows")
        parts.append(f"## {setting}: fitted on {fit}\n")
        parts.append(rows_table(results, setting, sets) + "\n")
        for key, title in (("roc_auc", "ROC-AUC"), ("average_precision", "Average precision")):
            parts.append(f"### {setting}, {title}\n")
            parts.append(table(results, setting, sets, detectors, key, ".3f") + "\n")
        parts.append(f"### {setting}, fit wall-clock (s)\n")
        parts.append(table(results, setting, sets, detectors, "fit_seconds", ".2f") + "\n")
        caught = warnings_table(results, setting, sets, detectors)
        if caught:
            parts.append(f"### {setting}, warnings per fit (category count; failures)\n")
            parts.append(caught + "\n")
    return "\n".join(parts)


def machine() -> str:
    import sklearn
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"torch {torch.__version__}, scikit-learn {sklearn.__version__}")


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                              capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def add_common_arguments(parser: argparse.ArgumentParser, max_rows_help: str,
                         max_iter_help: str, seed_help: str, quick: dict = QUICK) -> None:
    """The options every real-table benchmark here shares; ``quick`` is what
    ``--quick`` sets."""
    parser.add_argument("--sets", nargs="+", default=None,
                        help="data sets (default: every .npz in --data-dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-rows", type=int, default=10000, help=max_rows_help)
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--max-iter", type=int, default=None, help=max_iter_help)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: --max-iter {quick['max_iter']} "
                             f"--max-rows {quick['max_rows']}")
    parser.add_argument("--output", default=None, help="write every figure to this JSON file")
    parser.set_defaults(quick_settings=quick)


def start(args, details: str = "") -> tuple[list[str], str]:
    """Apply ``--quick`` and the thread count; print and return the run's header.

    Returns the data sets to run and the header."""
    if args.quick:
        args.max_iter = args.quick_settings["max_iter"]
        args.max_rows = args.quick_settings["max_rows"]
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    header = (f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}, {args.threads} thread(s); "
              f"skmaf {git_commit()}; seed {args.seed}, max_rows {args.max_rows}, "
              f"max_iter {args.max_iter or 'default'}{details}")
    print(header + "\n", flush=True)
    return args.sets or available_sets(args.data_dir), header


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", default=DEFAULT_DETECTORS,
                        choices=list(DETECTORS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    add_common_arguments(parser, "subsample larger training parts to this many rows",
                         "skmaf's max_iter (default: the estimators' own)", "the splits' seed")
    args = parser.parse_args()
    sets, header = start(args)

    results = []
    for set_name in sets:
        X, y = load_set(set_name, args.data_dir)
        for setting in args.settings:
            fit_rows, score_rows = split_indices(y, setting, args.seed, args.max_rows)
            for name in args.detectors:
                result = {"data": set_name, "setting": setting, "detector": name,
                          "n_features": X.shape[1],
                          **run_one(X, y, fit_rows, score_rows, DETECTORS[name],
                                    args.max_iter)}
                results.append(result)
                summary = (result["error"] if "error" in result else
                           f"ROC-AUC {result['roc_auc']:.3f}, AP "
                           f"{result['average_precision']:.3f}, fit "
                           f"{result['fit_seconds']:.1f} s")
                print(f"{set_name} / {setting} / {name}: {summary}", file=sys.stderr,
                      flush=True)

    print(report(results, args.settings, sets, args.detectors))
    if args.output:
        Path(args.output).write_text(json.dumps(
            {"header": header, "machine": machine(), "commit": git_commit(),
             "date": time.strftime("%Y-%m-%d"), "seed": args.seed,
             "max_rows": args.max_rows, "max_iter": args.max_iter,
             "settings": args.settings, "sets": sets, "detectors": args.detectors,
             "results": results}, indent=1))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
