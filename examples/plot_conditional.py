"""Conditional densities: MAFRegressor for p(y | x), MAFClassifier for p(x | class).

Two conditional MAFs (the MAF paper's section 4.4), each with a figure.

``MAFRegressor`` models the whole predictive distribution of a target. On a
1-D regression whose noise is skewed and grows with |x|, a mean and a
symmetric error bar would miss the shape; the conditional median, the 25-75%
and 5-95% quantile bands (``predict_quantiles``) and draws from p(y | x)
(``sample_y``) show it. The title gives the share of held-out rows inside the
90% interval (``predict_interval``): 0.9 for a calibrated model.

``MAFClassifier`` fits one density of the pixels per class, here on
scikit-learn's 8x8 digits (integers 0..16, dequantized by the model), and so
can generate digits of a chosen class (``sample(y=...)``). Each row of the
second figure holds one class's samples, sorted by the model's log-likelihood
of them, log p(x | class), from highest to lowest (the paper's figure 2).

Run it with ``python examples/plot_conditional.py`` (a minute or two on one
core) or ``--quick`` (seconds); the figures go to ``examples/output`` or
``--output DIR``. All data are generated or bundled with scikit-learn.
"""

# %%
import matplotlib

matplotlib.use("Agg")

import time

import matplotlib.pyplot as plt
import numpy as np
from _example_utils import example_settings, markdown_table, mean_with_error, save_figure
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skmaf import MAFClassifier, MAFRegressor

settings = example_settings(__doc__)
n_rows = 400 if settings.quick else 3000
n_per_class = 5 if settings.quick else 10
# Full mode uses the estimators' defaults: 5 MADEs of one 100-unit layer (and,
# for the regressor, a 5-component mixture base).
network = dict(n_transforms=2, n_hidden_units=8, max_iter=3) if settings.quick else {}

# %% [markdown]
# ## A regression with skewed, heteroscedastic noise
#
# y = sin(1.5 x) + s(x) (E - 1) with E ~ Exp(1) and s(x) = 0.1 + 0.25 |x|: the
# noise has mean zero, a long upper tail, and spreads out away from x = 0. Its
# true conditional median is sin(1.5 x) + s(x) (ln 2 - 1).


# %%
def noise_scale(x):
    return 0.1 + 0.25 * np.abs(x)


def sample_regression(n_samples, random_state):
    rng = np.random.RandomState(random_state)
    x = rng.uniform(-3, 3, n_samples)
    y = np.sin(1.5 * x) + noise_scale(x) * (rng.exponential(size=n_samples) - 1)
    return x.reshape(-1, 1), y


def true_log_density(X, y):
    z = (y - np.sin(1.5 * X[:, 0])) / noise_scale(X[:, 0])
    with np.errstate(divide="ignore"):
        return np.where(z > -1, -(z + 1) - np.log(noise_scale(X[:, 0])), -np.inf)


X, y = sample_regression(n_rows, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
start = time.perf_counter()
regressor = MAFRegressor(random_state=0, **network).fit(X_train, y_train)
regression_seconds = time.perf_counter() - start

# %% [markdown]
# ## Held-out calibration and likelihood
#
# A calibrated model puts 90% of new rows inside its 90% interval and 50%
# inside its 25-75% band; the true density's log-likelihood is the ceiling.

# %%
low, high = regressor.predict_interval(X_test, coverage=0.9).T
coverage_90 = np.mean((y_test >= low) & (y_test <= high))
quartiles = regressor.predict_quantiles(X_test, [0.25, 0.75])
coverage_50 = np.mean((y_test >= quartiles[:, 0]) & (y_test <= quartiles[:, 1]))
print(markdown_table(
    ["", "test log-likelihood (nats)", "5-95% coverage", "25-75% coverage", "fit (s)"],
    [["MAFRegressor", mean_with_error(regressor.log_density(X_test, y_test)),
      f"{coverage_90:.3f}", f"{coverage_50:.3f}", f"{regression_seconds:.1f}"],
     ["true density", mean_with_error(true_log_density(X_test, y_test)), "0.900", "0.500",
      ""]],
))

# %% [markdown]
# ## The figure: quantile bands and draws from p(y | x)

# %%
grid = np.linspace(-3, 3, 200).reshape(-1, 1)
bands = regressor.predict_quantiles(grid, [0.05, 0.25, 0.5, 0.75, 0.95])
draws = regressor.sample_y(grid[::4], n_samples=3, random_state=0)

figure, ax = plt.subplots(figsize=(9, 5.5))
ax.scatter(X_train[:, 0], y_train, s=4, color="grey", alpha=0.4, label="training data")
ax.fill_between(grid[:, 0], bands[:, 0], bands[:, 4], color="tab:blue", alpha=0.2,
                label="5-95% quantiles")
ax.fill_between(grid[:, 0], bands[:, 1], bands[:, 3], color="tab:blue", alpha=0.35,
                label="25-75% quantiles")
ax.plot(grid[:, 0], bands[:, 2], color="tab:blue", label="predicted median")
ax.plot(grid[:, 0], np.sin(1.5 * grid[:, 0]) + noise_scale(grid[:, 0]) * (np.log(2) - 1),
        color="black", linestyle="--", linewidth=1, label="true median")
ax.scatter(np.repeat(grid[::4, 0], draws.shape[1]), draws.ravel(), s=8, marker="x",
           color="tab:orange", label="sample_y draws (3 per x)")
ax.set(xlabel="x", ylabel="y")
# The legend under the axes, where it covers no data.
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize="small")
ax.set_title(f"MAFRegressor on skewed noise: {coverage_90:.1%} of held-out rows "
             "inside the 90% interval")
figure.tight_layout()
save_figure(figure, settings, "conditional_regression")

# %% [markdown]
# ## A class-conditional MAF on the digits
#
# Fitted on 80% of the digits; the other 20% check it as a classifier (Bayes'
# rule with the class frequencies as priors) and as a density, in nats per
# digit: log-probabilities of the integer pixels' unit cells (``dequantize="auto"``,
# the default, dequantizes every integer-valued pixel).

# %%
digits_X, digits_y = load_digits(return_X_y=True)
if settings.quick:
    digits_X, digits_y = digits_X[:300], digits_y[:300]
D_train, D_test, c_train, c_test = train_test_split(
    digits_X, digits_y, test_size=0.2, stratify=digits_y, random_state=0)
start = time.perf_counter()
classifier = MAFClassifier(random_state=0, **network).fit(D_train, c_train)
classification_seconds = time.perf_counter() - start
print(markdown_table(
    ["", "test accuracy", "test log-likelihood (nats per digit)", "fit (s)"],
    [["MAFClassifier", f"{classifier.score(D_test, c_test):.3f}",
      mean_with_error(classifier.score_samples(D_test)), f"{classification_seconds:.1f}"]],
))

# %% [markdown]
# ## The figure: generated digits of each class, most likely first
#
# ``sample`` returns integer pixels; the few outside 0..16 are clipped for
# display. The log-likelihood of a sample under its own class,
# log p(x | c) = log p(x, c) - log p(c), orders each row.

# %%
figure, axes = plt.subplots(10, n_per_class, figsize=(0.9 * n_per_class, 9.5))
for digit, row in zip(range(10), axes):
    samples, _ = classifier.sample(y=[digit] * n_per_class, random_state=digit)
    log_likelihood = (classifier.predict_joint_log_proba(samples)[:, digit]
                      - np.log(classifier.class_prior_[digit]))
    order = np.argsort(log_likelihood)[::-1]
    for ax, index in zip(row, order):
        ax.imshow(np.clip(samples[index], 0, 16).reshape(8, 8), cmap="gray_r",
                  vmin=0, vmax=16)
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{log_likelihood[index]:.0f}", fontsize=7)
    row[0].set_ylabel(str(digit), rotation=0, labelpad=10, fontsize=12)
figure.suptitle("MAFClassifier samples per class, sorted by log p(x | class) (nats, above each)",
                fontsize=10)
figure.tight_layout()
save_figure(figure, settings, "conditional_digits")
