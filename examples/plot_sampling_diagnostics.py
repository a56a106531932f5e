"""Sampling and diagnostics: does a fitted MAF look like the data?

Two checks that need no true density. Samples drawn with ``sample`` should
look like held-out data, pair by pair (a pair plot). And ``transform`` maps
data to the flow's base variables u, which are independent standard normals
exactly when the model fits: a normal Q-Q plot of each column of
``transform(X_test)`` should follow the diagonal. That is the MAF paper's
goodness-of-fit check (its figure 1), on real data.

The data are the normal rows of ADBench's MAGIC gamma telescope set (10
continuous features) from ``--data-dir`` (default ``../shared/data``), or
scikit-learn's digits, dequantized, where that is missing.

Run it with ``python examples/plot_sampling_diagnostics.py`` (a minute or two
on one core) or ``--quick`` (seconds); the figures go to ``examples/figures``
or ``--output DIR``.
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
    mean_with_error,
    save_figure,
)
from scipy import stats
from sklearn.model_selection import train_test_split

from skmaf import MAFDensity

DATASET = "22_magic.gamma"
N_PAIR_PLOT_FEATURES = 4
N_QQ_FEATURES = 10

settings = example_settings(__doc__)
n_rows = 500 if settings.quick else 6000
# Full mode uses MAFDensity's defaults (5 MADEs of one 100-unit layer).
network = dict(n_transforms=2, n_hidden_units=8, max_iter=3) if settings.quick else {}

# %% [markdown]
# ## Fit a MAF on the training rows

# %%
data = load_normal_rows(DATASET, settings.data_dir, max_rows=n_rows)
X_train, X_test = train_test_split(dequantize(data.X), test_size=1 / 6, random_state=0)
model = MAFDensity(random_state=0, **network).fit(X_train)
print(f"data: {data.name}, {len(X_train)} training and {len(X_test)} test rows, "
      f"{X_train.shape[1]} features; test log-likelihood "
      f"{mean_with_error(model.score_samples(X_test))} nats after {model.n_iter_} epochs")

# %% [markdown]
# ## Samples against data
#
# As many samples as test rows, so the two clouds have the same weight. Below
# the diagonal, each panel overlays the two for one pair of features; on the
# diagonal, their histograms. The features shown are the most variable ones.


# %%
def most_variable_columns(X, n_columns):
    return np.sort(np.argsort(X.var(axis=0))[::-1][:n_columns])


def central_range(values):
    """Axis limits that hold 99% of the data, so a few extreme rows do not squash the plot."""
    low, high = np.percentile(values, [0.5, 99.5])
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def pair_plot(data_rows, sample_rows, columns):
    n = len(columns)
    figure, axes = plt.subplots(n, n, figsize=(2.6 * n, 2.6 * n))
    limits = [central_range(data_rows[:, column]) for column in columns]
    for row, y_column in enumerate(columns):
        for col, x_column in enumerate(columns):
            ax = axes[row, col]
            if col > row:
                ax.axis("off")
            elif col == row:
                bins = np.linspace(*limits[col], 40)
                ax.hist(data_rows[:, x_column], bins, density=True, histtype="step",
                        label="test data")
                ax.hist(sample_rows[:, x_column], bins, density=True, histtype="step",
                        label="MAF samples")
                ax.set(xlim=limits[col], yticks=[])
            else:
                ax.scatter(data_rows[:, x_column], data_rows[:, y_column], s=1, alpha=0.3)
                ax.scatter(sample_rows[:, x_column], sample_rows[:, y_column], s=1,
                           alpha=0.3)
                ax.set(xlim=limits[col], ylim=limits[row])
            if row == n - 1:
                ax.set_xlabel(f"feature {x_column}")
            if col == 0 and row > 0:
                ax.set_ylabel(f"feature {y_column}")
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper right")
    return figure


samples = model.sample(len(X_test), random_state=0)
figure = pair_plot(X_test, samples, most_variable_columns(X_train, N_PAIR_PLOT_FEATURES))
figure.suptitle(f"MAF samples against test data ({data.name})")
figure.tight_layout()
save_figure(figure, settings, "sampling_pair_plot")

# %% [markdown]
# ## The test rows in u-space
#
# For each feature, the quantiles of the standardised test data (grey) and of
# the matching column of ``transform(X_test)`` (blue) against those of N(0, 1).
# A good model puts u on the diagonal even where the data bend away from it.

# %%
U_test = model.transform(X_test)
standardized_test = (X_test - X_train.mean(axis=0)) / X_train.std(axis=0)
qq_columns = most_variable_columns(X_train, N_QQ_FEATURES)

n_panel_rows = int(np.ceil(len(qq_columns) / 5))
figure, axes = plt.subplots(n_panel_rows, 5, figsize=(15, 3.2 * n_panel_rows), squeeze=False)
for ax, column in zip(axes.flat, qq_columns):
    for values, color, label in [(standardized_test[:, column], "grey", "standardised data"),
                                 (U_test[:, column], "tab:blue", "u = transform(X)")]:
        (normal_quantiles, ordered_values), _ = stats.probplot(values, dist="norm")
        ax.plot(normal_quantiles, ordered_values, ".", color=color, markersize=2,
                label=label)
    ax.axline((0, 0), slope=1, color="black", linewidth=0.8)
    # No fixed limits: a few rows far out in u-space are exactly what to look for.
    ax.set_title(f"feature {column}")
for ax in axes.flat[len(qq_columns):]:
    ax.axis("off")
for ax in axes[:, 0]:
    ax.set_ylabel("sample quantiles")
for ax in axes[-1]:
    ax.set_xlabel("N(0, 1) quantiles")
axes[0, 0].legend(loc="upper left", markerscale=4)
figure.suptitle(f"Normal Q-Q plots of the test rows ({data.name})")
figure.tight_layout()
save_figure(figure, settings, "sampling_qq_plots")

# %% [markdown]
# ## The same check in numbers
#
# Standard normal columns have mean 0, standard deviation 1, skewness 0 and
# excess kurtosis 0.

# %%
rows = [
    [f"feature {column}",
     f"{stats.skew(standardized_test[:, column]):.2f}",
     f"{stats.kurtosis(standardized_test[:, column]):.2f}",
     f"{U_test[:, column].mean():.2f}", f"{U_test[:, column].std():.2f}",
     f"{stats.skew(U_test[:, column]):.2f}", f"{stats.kurtosis(U_test[:, column]):.2f}"]
    for column in qq_columns
]
print(markdown_table(
    ["", "data skewness", "data excess kurtosis",
     "u mean", "u std", "u skewness", "u excess kurtosis"],
    rows,
))
