"""Density quality on the shared real tables: skmaf against tuned baselines and zuko's NSF.

The protocol, per ``.npz`` set of the data directory:

* the normal rows (``y == 0``), shuffled with ``--seed`` and split 64/16/20 into
  train / validation / test; where the training part would exceed ``--max-rows``,
  the normal rows are first subsampled (same shuffle) to ``max_rows / 0.64`` rows, so
  all three parts shrink alike;
* integer-valued columns (every training value an integer) are dequantized for the
  models that cannot do it themselves (``GaussianMixture``, ``KernelDensity``, zuko's
  NSF): U[0, 1) noise is added to those columns of the train, validation and test
  rows before standardising. skmaf's estimators get the integers as they are (their
  own ``dequantize`` default is to handle them);
* one standardisation for all: mean and standard deviation per column of the
  (noised) training rows, constant columns scale 1, applied to the noised and the
  raw rows alike. Every log-likelihood is per row in these standardised units.
  skmaf, which standardises internally, is by default fitted on the raw rows
  (``--skmaf-input raw``: integers stay integers, which its dequantization looks
  for) and its log-densities are moved into the standardised units by the map's
  log-Jacobian, ``+ sum(log scale)``, which is exact for an affine map;
  ``--skmaf-input standardised`` fits it on the standardised raw rows instead.

The models:

* ``MAFDensity``, ``MADEMoGDensity``: skmaf's, ``random_state=0``, fitted on train +
  validation with their own internal early stopping (their defaults otherwise);
  ``MAFDensity(n_components=10)``, the paper's MAF MoG, the same way (only when
  named in ``--models``);
* ``GaussianMixture``: full covariance, ``n_components`` in 1, 2, 5, 10, 20 chosen by
  the validation log-likelihood (fitted on train), then refitted on train +
  validation, ``random_state=0``;
* ``KernelDensity``: Gaussian kernel, bandwidth chosen on validation from 10
  log-spaced values in [0.05, 2] (standardised units), then fitted on train +
  validation;
* ``zuko NSF``: ``zuko.flows.NSF(D, transforms=5, hidden_features=[100])``, trained
  with skmaf's protocol: Adam at 1e-3, batch 100, early stopping on the validation
  part (patience 20 epochs, improvement above 1e-4), at most ``--max-iter`` (200)
  epochs, the best epoch's state kept.

Reported per set and model: the mean test log-likelihood ± 2 standard errors, the
difference to the set's best model ± 2 paired standard errors (per-row differences on
the same test rows), the lowest test row's log-likelihood, the number of non-finite
values, what was chosen (components, bandwidth, epochs), the fit wall-clock (model
selection included) and the warnings raised (counted, not printed). Then a summary:
sets as rows, models as columns, the best in bold, and whether each MAF model run comes within
2 paired standard errors of the best of GaussianMixture, KernelDensity and
MADEMoGDensity. Run:

    OMP_NUM_THREADS=1 python benchmarks/real_tables.py [--sets 6_cardio 38_thyroid ...]
        [--models MAFDensity "zuko NSF" ...] [--max-rows 10000] [--max-iter 200]
        [--seed 0] [--skmaf-input raw] [--data-dir ../shared/data] [--threads 1]
        [--quick] [--output benchmarks/real_tables.json]

``--quick`` (``--max-iter 3 --max-rows 500``) checks the script in a minute or so.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from anomaly import (
    add_common_arguments,
    count_warnings,
    git_commit,
    load_set,
    machine,
    standardisation,
    start,
)

SHARES = {"train": 0.64, "validation": 0.16}  # test: the rest, 0.20
QUICK = {"max_iter": 3, "max_rows": 500}
GMM_COMPONENTS = (1, 2, 5, 10, 20)
KDE_BANDWIDTHS = np.geomspace(0.05, 2.0, 10)
#: skmaf's training protocol, which zuko's NSF is trained with.
BATCH_SIZE, LEARNING_RATE, PATIENCE, TOL = 100, 1e-3, 20, 1e-4
MAX_ITER = 200
#: The references MAFDensity is compared with in the summary.
REFERENCES = ("GaussianMixture", "KernelDensity", "MADEMoGDensity")


# ------------------------------------------------------------------------ data
@dataclass
class Tables:
    """One set's parts, raw and noised, and the standardisation shared by both."""

    name: str
    raw: dict[str, np.ndarray]
    noised: dict[str, np.ndarray]
    integer: np.ndarray
    mean: np.ndarray = field(init=False)
    scale: np.ndarray = field(init=False)

    def __post_init__(self):
        self.mean, self.scale = standardisation(self.noised["train"])

    @property
    def n_features(self) -> int:
        return self.raw["train"].shape[1]

    @property
    def log_jacobian(self) -> float:
        """log p(standardised row) - log p(raw row): ``sum(log scale)``."""
        return float(np.log(self.scale).sum())

    def standardised(self, part: str, noised: bool = True) -> np.ndarray:
        rows = (self.noised if noised else self.raw)[part]
        return (rows - self.mean) / self.scale

    def fit_rows(self, noised: bool = True) -> np.ndarray:
        """Train + validation, standardised."""
        return np.vstack([self.standardised("train", noised),
                          self.standardised("validation", noised)])


def split_normal_rows(X: np.ndarray, seed: int, max_rows: int | None,
                      rng: np.random.RandomState | None = None) -> dict[str, np.ndarray]:
    """Shuffle with ``seed`` and split 64/16/20; at most ``max_rows`` training rows."""
    rng = rng or np.random.RandomState(seed)
    order = rng.permutation(len(X))
    if max_rows is not None:
        order = order[:min(len(order), int(max_rows / SHARES["train"]))]
    n_train = int(SHARES["train"] * len(order))
    n_validation = int(SHARES["validation"] * len(order))
    train, validation, test = np.split(order, [n_train, n_train + n_validation])
    return {"train": X[train], "validation": X[validation], "test": X[test]}


def prepare(name: str, data_dir, seed: int, max_rows: int | None) -> Tables:
    X, y = load_set(name, data_dir)
    rng = np.random.RandomState(seed)
    raw = split_normal_rows(X[y == 0], seed, max_rows, rng)
    integer = np.all(raw["train"] == np.round(raw["train"]), axis=0)
    noised = {}
    for part, rows in raw.items():
        rows = rows.copy()
        rows[:, integer] += rng.uniform(size=(len(rows), int(integer.sum())))
        noised[part] = rows
    return Tables(name, raw, noised, integer)


# ---------------------------------------------------------------------- models
def fit_skmaf(estimator_name: str, tables: Tables, args, **settings) -> tuple[np.ndarray, dict]:
    import skmaf

    params = {"random_state": 0, **settings}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    model = getattr(skmaf, estimator_name)(**params)
    if args.skmaf_input == "raw":
        fit_rows = np.vstack([tables.raw["train"], tables.raw["validation"]])
        test, shift = tables.raw["test"], tables.log_jacobian
    else:
        fit_rows, test, shift = (tables.fit_rows(noised=False),
                                 tables.standardised("test", noised=False), 0.0)
    model.fit(fit_rows)
    log_likelihood = np.asarray(model.score_samples(test), dtype=np.float64) + shift
    return log_likelihood, {"epochs": int(model.n_iter_)}


def _select(candidates, fit_and_score) -> tuple[object, dict]:
    """The candidate with the highest validation score, and every candidate's score."""
    scores = {}
    for value in candidates:
        try:
            scores[value] = float(fit_and_score(value))
        except (ValueError, np.linalg.LinAlgError):
            scores[value] = -math.inf
        if not math.isfinite(scores[value]):
            scores[value] = -math.inf
    return max(scores, key=scores.get), scores


def fit_gaussian_mixture(tables: Tables, args) -> tuple[np.ndarray, dict]:
    from sklearn.mixture import GaussianMixture

    train, validation = tables.standardised("train"), tables.standardised("validation")

    def mixture(n_components):
        return GaussianMixture(n_components, covariance_type="full", random_state=0)

    candidates = [k for k in GMM_COMPONENTS if k <= len(train)]
    best, scores = _select(candidates, lambda k: mixture(k).fit(train).score(validation))
    model = mixture(best).fit(tables.fit_rows())
    return model.score_samples(tables.standardised("test")), {
        "n_components": best, "validation": {str(k): v for k, v in scores.items()}}


def fit_kernel_density(tables: Tables, args) -> tuple[np.ndarray, dict]:
    from sklearn.neighbors import KernelDensity

    train, validation = tables.standardised("train"), tables.standardised("validation")

    def kde(bandwidth):
        return KernelDensity(kernel="gaussian", bandwidth=bandwidth)

    best, scores = _select([float(b) for b in KDE_BANDWIDTHS],
                           lambda b: kde(b).fit(train).score_samples(validation).mean())
    model = kde(best).fit(tables.fit_rows())
    return model.score_samples(tables.standardised("test")), {
        "bandwidth": best, "validation": {f"{b:.4g}": v for b, v in scores.items()}}


def _log_prob(flow, X, chunk: int = 4096) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([flow().log_prob(part).double().numpy()
                               for part in X.split(chunk)])


def fit_zuko_nsf(tables: Tables, args) -> tuple[np.ndarray, dict]:
    import torch
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.NSF(tables.n_features, transforms=5, hidden_features=[100])
    train, validation, test = (
        torch.as_tensor(tables.standardised(part), dtype=torch.float32)
        for part in ("train", "validation", "test"))
    optimizer = torch.optim.Adam(flow.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)
    n_batches = max(len(train) // BATCH_SIZE, 1)  # near-equal batches, as skmaf's
    best, best_state, best_epoch, waited, epoch = -math.inf, None, 0, 0, 0
    for epoch in range(1, (args.max_iter or MAX_ITER) + 1):
        flow.train()
        for index in torch.randperm(len(train), generator=generator).tensor_split(n_batches):
            loss = -flow().log_prob(train[index]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        flow.eval()
        score = float(_log_prob(flow, validation).mean())
        if not math.isfinite(score):
            break
        waited = 0 if score > best + TOL else waited + 1
        if score > best:
            best, best_state, best_epoch = score, copy.deepcopy(flow.state_dict()), epoch
        if waited >= PATIENCE:
            break
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    return _log_prob(flow, test), {"epochs": epoch, "best_epoch": best_epoch,
                                   "validation": best}


MODELS = {
    "MAFDensity": lambda tables, args: fit_skmaf("MAFDensity", tables, args),
    "MADEMoGDensity": lambda tables, args: fit_skmaf("MADEMoGDensity", tables, args),
    # The paper's MAF MoG: the MAF's steps over a MADE MoG base (not in the default run).
    "MAFDensity(n_components=10)": lambda tables, args: fit_skmaf(
        "MAFDensity", tables, args, n_components=10),
    "GaussianMixture": fit_gaussian_mixture,
    "KernelDensity": fit_kernel_density,
    "zuko NSF": fit_zuko_nsf,
}

DEFAULT_MODELS = [name for name in MODELS if name != "MAFDensity(n_components=10)"]
#: The models compared with the references in the summary.
MAF_MODELS = ("MAFDensity", "MAFDensity(n_components=10)")


def run_one(model_name: str, tables: Tables, args) -> tuple[dict, np.ndarray | None]:
    """Fit and score one model; its figures and its per-row test log-likelihoods."""
    result = {"data": tables.name, "model": model_name}
    log_likelihood = None
    with warnings.catch_warnings(record=True) as caught:
        # Recorded, so none is printed (skmaf's DegenerateDataWarning included).
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            log_likelihood, details = MODELS[model_name](tables, args)
            result.update(details)
        except Exception as error:  # a failed fit is a result too
            result["error"] = f"{type(error).__name__}: {error}"
        result["fit_seconds"] = time.perf_counter() - start
    result["warnings"] = count_warnings(caught)
    if log_likelihood is not None:
        finite = np.isfinite(log_likelihood)
        result["non_finite"] = int((~finite).sum())
        result["lowest"] = float(log_likelihood[finite].min()) if finite.any() else None
        result["median"] = float(np.median(log_likelihood))
        mean, two_se = mean_and_error(log_likelihood)
        result["test_log_likelihood"], result["two_standard_errors"] = mean, two_se
    return result, log_likelihood


def mean_and_error(values) -> tuple[float, float]:
    """Mean and two standard errors (``datasets.mean_and_error``)."""
    import datasets

    with np.errstate(invalid="ignore"):
        mean, two_se = datasets.mean_and_error(values)
    return float(mean), float(two_se)


def add_paired_differences(results: list[dict], log_likelihoods: dict[str, np.ndarray]):
    """Each model's mean difference to the set's best ± 2 paired standard errors."""
    means = {r["model"]: r["test_log_likelihood"] for r in results
             if math.isfinite(r.get("test_log_likelihood", math.nan))}
    if not means:
        return None
    best = max(means, key=means.get)
    for result in results:
        if result["model"] in log_likelihoods:
            difference = log_likelihoods[result["model"]] - log_likelihoods[best]
            mean, two_se = mean_and_error(difference)
            result["best_model"] = best
            result["difference_to_best"] = mean
            result["paired_standard_error"] = two_se / 2
    return best


def maf_against_references(results: list[dict], log_likelihoods: dict[str, np.ndarray],
                           model: str = "MAFDensity") -> dict | None:
    """Is ``model`` (a MAF) within 2 paired s.e. of the best of the references?"""
    means = {r["model"]: r["test_log_likelihood"] for r in results
             if r["model"] in REFERENCES
             and math.isfinite(r.get("test_log_likelihood", math.nan))}
    if model not in log_likelihoods or not means:
        return None
    reference = max(means, key=means.get)
    difference = log_likelihoods[model] - log_likelihoods[reference]
    mean, two_se = mean_and_error(difference)
    return {"reference": reference, "difference": mean, "two_paired_standard_errors": two_se,
            "within": bool(mean >= -two_se)}


# --------------------------------------------------------------------- report
def _number(value, spec=".3f") -> str:
    if value is None:
        return ""
    return format(value, spec) if math.isfinite(value) else str(value)


def _short_warnings(counts: dict[str, int]) -> str:
    return ", ".join(f"{name.removesuffix('Warning') or name} {count}"
                     for name, count in counts.items())


def _chosen(result: dict) -> str:
    # "(edge)": the choice is the end of its grid, which may be too narrow there.
    if "n_components" in result:
        edge = " (edge)" if result["n_components"] == max(GMM_COMPONENTS) else ""
        return f"{result['n_components']} components{edge}"
    if "bandwidth" in result:
        edge = (" (edge)" if np.isclose(result["bandwidth"], KDE_BANDWIDTHS[[0, -1]]).any()
                else "")
        return f"bandwidth {result['bandwidth']:.3g}{edge}"
    if "best_epoch" in result:
        return f"{result['epochs']} epochs (best {result['best_epoch']})"
    if "epochs" in result:
        return f"{result['epochs']} epochs"
    return ""


def set_table(tables: Tables, results: list[dict]) -> str:
    sizes = "/".join(f"{len(tables.raw[part]):,}" for part in ("train", "validation", "test"))
    integer = np.flatnonzero(tables.integer).tolist()
    lines = [f"### {tables.name}: D={tables.n_features}, train/validation/test rows {sizes}, "
             f"integer columns {integer or 'none'}\n",
             "| model | test log-lik ± 2 s.e. | Δ to best ± 2 paired s.e. | lowest test row "
             "| non-finite | chosen | fit (s) | warnings |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error'].splitlines()[0][:100]} "
                         f"|  |  |  |  | {r['fit_seconds']:.1f} | "
                         f"{_short_warnings(r['warnings'])} |")
            continue
        difference = ""
        if "difference_to_best" in r:
            difference = ("best" if r["model"] == r["best_model"] else
                          f"{_number(r['difference_to_best'])} ± "
                          f"{_number(2 * r['paired_standard_error'])}")
        lines.append(
            f"| {r['model']} | {_number(r['test_log_likelihood'])} ± "
            f"{_number(r['two_standard_errors'])} | {difference} | {_number(r['lowest'])} "
            f"| {r['non_finite']} | {_chosen(r)} | {r['fit_seconds']:.1f} "
            f"| {_short_warnings(r['warnings'])} |")
    return "\n".join(lines)


def summary_table(all_results: list[dict], sets: list[str], models: list[str],
                  comparisons: dict[str, dict[str, dict | None]]) -> str:
    """Sets as rows, models as columns; then, for each MAF model run, whether it is within
    2 paired s.e. of the best of the references (``comparisons[set][model]``)."""
    found = {(r["data"], r["model"]): r for r in all_results}
    compared = [m for m in MAF_MODELS if m in models] if any(
        m in models for m in REFERENCES) else []
    header = "| data | " + " | ".join(models) + "".join(
        f" | {m} within 2 paired s.e. of best of GMM/KDE/MADE MoG" for m in compared)
    lines = [header + " |", "|---|" + "---|" * (len(models) + len(compared))]
    for set_name in sets:
        results = [found[(set_name, m)] for m in models if (set_name, m) in found]
        finite = {r["model"]: r["test_log_likelihood"] for r in results
                  if math.isfinite(r.get("test_log_likelihood", math.nan))}
        best = max(finite, key=finite.get) if finite else None
        cells = []
        for model in models:
            r = found.get((set_name, model))
            if r is None:
                cells.append("")
            elif "error" in r:
                cells.append("failed")
            else:
                cell = (f"{_number(r['test_log_likelihood'])} ± "
                        f"{_number(r['two_standard_errors'])}")
                cells.append(f"**{cell}**" if model == best else cell)
        for model in compared:
            c = comparisons.get(set_name, {}).get(model)
            cells.append("" if c is None else
                         f"{'yes' if c['within'] else 'no'} ({_number(c['difference'])} ± "
                         f"{_number(c['two_paired_standard_errors'])} vs {c['reference']})")
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    add_common_arguments(
        parser, "at most this many training rows (the normal rows are subsampled before "
        "the split)", f"epochs at most, skmaf's and zuko's (default: skmaf's own, "
        f"{MAX_ITER} for zuko)", "the split's and the dequantization noise's seed", QUICK)
    parser.add_argument("--skmaf-input", choices=("raw", "standardised"), default="raw",
                        help="what skmaf is fitted on: the raw rows (log-densities moved to "
                             "standardised units by the Jacobian) or the standardised ones")
    args = parser.parse_args()
    sets, header = start(args, f", skmaf input {args.skmaf_input}")

    all_results, comparisons = [], {}
    for set_name in sets:
        tables = prepare(set_name, args.data_dir, args.seed, args.max_rows)
        results, log_likelihoods = [], {}
        for model_name in args.models:
            result, log_likelihood = run_one(model_name, tables, args)
            results.append(result)
            if log_likelihood is not None:
                log_likelihoods[model_name] = log_likelihood
            print(f"{set_name} / {model_name}: "
                  + (result["error"] if "error" in result else
                     f"{_number(result['test_log_likelihood'])} ± "
                     f"{_number(result['two_standard_errors'])}, "
                     f"fit {result['fit_seconds']:.1f} s"), file=sys.stderr, flush=True)
        add_paired_differences(results, log_likelihoods)
        comparisons[set_name] = {model: maf_against_references(results, log_likelihoods, model)
                                 for model in MAF_MODELS}
        all_results += results
        print(set_table(tables, results) + "\n", flush=True)

    print("### Summary: mean test log-likelihood ± 2 s.e. (standardised units, per row)\n")
    print(summary_table(all_results, sets, args.models, comparisons))
    if args.output:
        Path(args.output).write_text(json.dumps(
            {"header": header, "machine": machine(), "commit": git_commit(),
             "date": time.strftime("%Y-%m-%d"), "seed": args.seed,
             "max_rows": args.max_rows, "max_iter": args.max_iter,
             "skmaf_input": args.skmaf_input, "sets": sets, "models": args.models,
             "results": all_results, "maf_against_references": comparisons}, indent=1))
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
