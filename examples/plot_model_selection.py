"""Model selection: choose a MAF's size by cross-validated log-likelihood.

``MAFDensity.score`` is the mean log-likelihood of held-out rows, so
``GridSearchCV`` needs no scorer: it ranks the candidates by how probable they
find the rows they were not trained on. Here it searches the number of MADEs
(``n_transforms``), the hidden layers per MADE (``n_hidden_layers``) and the
units per layer (``n_hidden_units``) of a ``Pipeline`` that dequantizes the
data first, then scores the chosen model on a test set kept out of the search.

The data are the normal rows of ADBench's Statlog satellite set (36 integer
pixel values) from ``--data-dir`` (default ``../shared/data``), or
scikit-learn's digits (64 integer pixels) where that is missing.

Run it with ``python examples/plot_model_selection.py`` (a few minutes on one
core) or ``--quick`` (seconds); the figure goes to ``examples/figures`` or
``--output DIR``.
"""

# %%
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from _example_utils import (
    dequantize,
    example_settings,
    load_normal_rows,
    markdown_table,
    save_figure,
)
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skmaf import MAFDensity

DATASET = "30_satellite"

settings = example_settings(__doc__)
if settings.quick:
    n_rows, max_iter = 300, 2
    param_grid = {
        "maf__n_transforms": [1, 2],
        "maf__n_hidden_layers": [1, 2],
        "maf__n_hidden_units": [4, 8],
    }
else:
    n_rows, max_iter = 3000, 200
    param_grid = {
        "maf__n_transforms": [2, 5],
        "maf__n_hidden_layers": [1, 2],
        "maf__n_hidden_units": [64, 256],
    }

# %% [markdown]
# ## The data
#
# A fifth of the rows is kept out of the search, to score the model it picks.

# %%
data = load_normal_rows(DATASET, settings.data_dir, max_rows=n_rows)
X_search, X_test = train_test_split(data.X, test_size=0.2, random_state=0)
print(f"data: {data.name}, {X_search.shape[0]} rows for the search and "
      f"{X_test.shape[0]} for the test, {data.X.shape[1]} features")

# %% [markdown]
# ## The pipeline
#
# The pixels are integers, so the first step dequantizes them (uniform noise in
# [0, 1), the MAF paper's practice); without it the density would put spikes on
# the integers and the log-likelihood would reward the spikes.
#
# No ``StandardScaler``: ``MAFDensity`` standardises internally and counts that
# map in its densities, so scores are log-densities of the pixels as given. A
# scaler in the pipeline would make them log-densities of the scaled data, in
# units that change with every fold's fitted scale. Dequantization adds noise
# but does not rescale, so the scores stay in pixel units.

# %%
# The candidates differ by tenths of a nat per row or more, so gains under 0.01
# nats do not count towards early stopping (the default tol is 1e-4): the slower
# fits then stop within max_iter instead of creeping on.
pipeline = Pipeline([
    ("dequantize", FunctionTransformer(dequantize, kw_args={"random_state": 0})),
    ("maf", MAFDensity(max_iter=max_iter, tol=0.01, random_state=0)),
])
search = GridSearchCV(pipeline, param_grid, cv=3).fit(X_search)

# %% [markdown]
# ## The cross-validated log-likelihoods, best first

# %%
results = search.cv_results_
rows = []
for i in np.argsort(results["rank_test_score"], kind="stable"):
    params = results["params"][i]
    rows.append([
        str(results["rank_test_score"][i]),
        str(params["maf__n_transforms"]),
        str(params["maf__n_hidden_layers"]),
        str(params["maf__n_hidden_units"]),
        f"{results['mean_test_score'][i]:.2f} ± {results['std_test_score'][i]:.2f}",
        f"{results['mean_fit_time'][i]:.1f}",
    ])
print(markdown_table(
    ["rank", "n_transforms", "n_hidden_layers", "n_hidden_units",
     "CV log-likelihood (mean ± std over folds)", "fit time (s)"],
    rows,
))
print(f"best: {search.best_params_}; its test log-likelihood: {search.score(X_test):.2f}")

# %% [markdown]
# ## The figure
#
# One panel per number of MADEs (``n_transforms``); error bars are the standard
# deviation over the three folds, and the star marks the chosen model.


# %%
def candidates_with(**params):
    """Indices of the candidates whose parameters include ``params``."""
    return [i for i, candidate in enumerate(results["params"])
            if all(candidate[f"maf__{name}"] == value for name, value in params.items())]


best = search.best_index_
transform_counts = param_grid["maf__n_transforms"]
figure, axes = plt.subplots(1, len(transform_counts), sharey=True,
                            figsize=(5 * len(transform_counts), 4), squeeze=False)
for ax, n_transforms in zip(axes[0], transform_counts):
    for n_hidden_layers in param_grid["maf__n_hidden_layers"]:
        index = candidates_with(n_transforms=n_transforms, n_hidden_layers=n_hidden_layers)
        units = [results["params"][i]["maf__n_hidden_units"] for i in index]
        ax.errorbar(units, results["mean_test_score"][index],
                    yerr=results["std_test_score"][index], marker="o", capsize=3,
                    label=f"n_hidden_layers = {n_hidden_layers}")
        if best in index:
            ax.plot(results["params"][best]["maf__n_hidden_units"],
                    results["mean_test_score"][best], "*", color="black", markersize=15,
                    label="chosen")
    ax.set(title=f"n_transforms = {n_transforms}", xlabel="n_hidden_units", xscale="log",
           xticks=param_grid["maf__n_hidden_units"],
           xticklabels=param_grid["maf__n_hidden_units"])
    ax.minorticks_off()
    ax.legend()
# The y-axis follows the means: one candidate's wide error bar (a fold with a few
# improbable rows) would otherwise squash every other difference; such a bar runs
# off the plot instead.
means, spreads = results["mean_test_score"], results["std_test_score"]
margin = 2 * np.median(spreads) + 0.05 * np.ptp(means)
axes[0, 0].set_ylim(means.min() - margin, means.max() + margin)
axes[0, 0].set_ylabel("cross-validated log-likelihood (nats)")
figure.suptitle(f"GridSearchCV on {data.name}")
figure.tight_layout()
save_figure(figure, settings, "model_selection")
