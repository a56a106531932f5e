"""The MAF paper's first example: one MADE against a stack of five.

The target density (Papamakarios et al., 2017, figure 1) is

    x2 ~ N(0, 4),    x1 | x2 ~ N(x2**2 / 4, 1).

A MADE with Gaussian conditionals that reads x1 first models p(x1) as a
Gaussian, but x1's marginal is skewed: the fit is poor, and the training data
mapped to the MADE's random numbers u are visibly non-Gaussian. A MAF stacks
five MADEs, each modelling the random numbers of the one before, and its u
are standard normal. Both models use the same order (x1, x2).

Run it with ``python examples/plot_paper_example.py`` (under a minute on one
core) or ``--quick`` (seconds); the figure goes to ``examples/figures`` or
``--output DIR``.
"""

# %%
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from _example_utils import example_settings, markdown_table, mean_with_error, save_figure

from skmaf import MAFDensity

settings = example_settings(__doc__)
n_rows = 500 if settings.quick else 5000
network = (
    dict(n_hidden_units=8, max_iter=3) if settings.quick else dict(n_hidden_units=100)
)

# %% [markdown]
# ## The data and their true density


# %%
def sample_paper_example(n_samples, random_state):
    rng = np.random.RandomState(random_state)
    x2 = rng.normal(0.0, 2.0, n_samples)
    return np.column_stack([rng.normal(x2**2 / 4, 1.0), x2])


def true_log_density(X):
    x1, x2 = X[:, 0], X[:, 1]
    log_p_x2 = -0.5 * (x2 / 2) ** 2 - np.log(2 * np.sqrt(2 * np.pi))
    log_p_x1_given_x2 = -0.5 * (x1 - x2**2 / 4) ** 2 - 0.5 * np.log(2 * np.pi)
    return log_p_x2 + log_p_x1_given_x2


X_train = sample_paper_example(n_rows, random_state=0)
X_test = sample_paper_example(n_rows, random_state=1)

# %% [markdown]
# ## A Gaussian MADE and a five-layer MAF
#
# A single Gaussian MADE is a one-layer MAF without batch normalisation. The
# "sequential" order makes x1 the first variable, the order in which a MADE fails.

# %%
models = {
    "MADE": MAFDensity(n_transforms=1, batch_norm=False, input_order="sequential",
                       random_state=0, **network),
    "MAF (5 layers)": MAFDensity(n_transforms=5, input_order="sequential",
                                 random_state=0, **network),
}
for model in models.values():
    model.fit(X_train)

rows = [["true density", mean_with_error(true_log_density(X_test)), "", ""]]
for name, model in models.items():
    rows.append([name, mean_with_error(model.score_samples(X_test)),
                 str(model.n_parameters_), str(model.n_iter_)])
print(markdown_table(
    ["model", "test log-likelihood (nats, ± 2 s.e.)", "parameters", "epochs"], rows
))

# %% [markdown]
# ## The figure
#
# Top: the densities on a grid. Bottom: 2,000 training rows (enough to see the
# shape), then the same rows mapped to u-space by each model's ``transform``,
# with the circles of one, two and three standard deviations of N(0, I). Where a
# model fits, its u fill those circles like a standard normal sample.

# %%
x1_grid, x2_grid = np.meshgrid(np.linspace(-4, 10, 200), np.linspace(-7, 7, 200))
grid = np.column_stack([x1_grid.ravel(), x2_grid.ravel()])
log_densities = {"true density": true_log_density(grid)}
log_densities.update({name: model.score_samples(grid) for name, model in models.items()})


# One colour scale for the three densities, so that their colours compare.
density_levels = np.linspace(0, max(np.exp(v).max() for v in log_densities.values()), 21)


def plot_density(axes, log_density, title):
    filled = axes.contourf(x1_grid, x2_grid, np.exp(log_density).reshape(x1_grid.shape),
                           levels=density_levels, cmap="viridis")
    axes.figure.colorbar(filled, ax=axes, label="density")
    axes.set(title=title, xlabel="$x_1$", ylabel="$x_2$")


def plot_base_variables(axes, U, title):
    axes.scatter(U[:, 0], U[:, 1], s=2, alpha=0.3)
    for radius in (1, 2, 3):
        axes.add_patch(plt.Circle((0, 0), radius, fill=False, color="black", linewidth=0.8))
    axes.set(title=title, xlabel="$u_1$", ylabel="$u_2$", xlim=(-5, 5), ylim=(-5, 5),
             aspect="equal")


figure, axes = plt.subplots(2, 3, figsize=(13, 8.5))
for column, (name, log_density) in enumerate(log_densities.items()):
    plot_density(axes[0, column], log_density, name)

X_shown = X_train[:2000]
axes[1, 0].scatter(X_shown[:, 0], X_shown[:, 1], s=2, alpha=0.3)
axes[1, 0].set(title="training data", xlabel="$x_1$", ylabel="$x_2$",
               xlim=axes[0, 0].get_xlim(), ylim=axes[0, 0].get_ylim())
for column, (name, model) in enumerate(models.items(), start=1):
    plot_base_variables(axes[1, column], model.transform(X_shown), f"{name}: data in u-space")
figure.tight_layout()
save_figure(figure, settings, "paper_example")
