"""Anomaly detection: a MAF's log-density against scikit-learn's detectors.

``DensityOutlierDetector`` turns any density estimator into an outlier
detector: rows where the fitted density is low are anomalies. This example
compares ``DensityOutlierDetector(MAFDensity())`` with the same detector on a
``GaussianMixture``, with ``IsolationForest`` and with ``LocalOutlierFactor``,
by ROC and precision-recall curves against the true labels.

Every detector is fitted on the same random half of all rows, anomalies
included and labels unused (the usual unsupervised setting), and scores the
other half. The data are ADBench's thyroid set (6 features, 2.5% anomalies)
from ``--data-dir`` (default ``../shared/data``), or scikit-learn's breast
cancer data, with 5% malignant tumours as the anomalies, where that is missing.

Run it with ``python examples/plot_anomaly_detection.py`` (under a minute on
one core) or ``--quick`` (seconds); the figure goes to ``examples/figures`` or
``--output DIR``.
"""

# %%
import matplotlib

matplotlib.use("Agg")

import time
import warnings

import matplotlib.pyplot as plt
from _example_utils import example_settings, load_labelled_rows, markdown_table, save_figure
from sklearn.ensemble import IsolationForest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor

from skmaf import DensityOutlierDetector, MAFDensity
from skmaf.exceptions import DegenerateDataWarning

DATASET = "38_thyroid"

settings = example_settings(__doc__)
n_rows = 500 if settings.quick else 10_000  # at most; thyroid has 3,772
# Full mode uses MAFDensity's defaults: the detector as it comes.
network = dict(n_transforms=2, n_hidden_units=8, max_iter=3) if settings.quick else {}

# %% [markdown]
# ## The data
#
# The split is stratified, so both halves hold the same share of anomalies.

# %%
data = load_labelled_rows(DATASET, settings.data_dir, max_rows=n_rows)
# The training labels stay unused: the detectors are unsupervised.
X_train, X_test, _, y_test = train_test_split(
    data.X, data.y, test_size=0.5, stratify=data.y, random_state=0
)
print(f"data: {data.name}, {len(data.X)} rows of {data.X.shape[1]} features, "
      f"{data.y.sum()} anomalies; fitted on {len(X_train)} rows, scored on {len(X_test)}")

# %% [markdown]
# ## The detectors
#
# All four have ``score_samples``, higher for more normal rows, so minus it is
# the anomaly score. ``LocalOutlierFactor`` needs ``novelty=True`` to score rows
# it was not fitted on. The detectors' ``contamination`` sets only the
# threshold of ``predict``, not the scores, so it plays no part here.

# %%
detectors = {
    "MAF": DensityOutlierDetector(MAFDensity(random_state=0, **network)),
    "Gaussian mixture": DensityOutlierDetector(
        GaussianMixture(n_components=5, covariance_type="full", random_state=0)
    ),
    "Isolation forest": IsolationForest(random_state=0),
    "Local outlier factor": LocalOutlierFactor(novelty=True),
}

anomaly_scores, fit_times = {}, {}
for name, detector in detectors.items():
    start = time.perf_counter()
    # Thyroid's lab values repeat a lot, and skmaf warns that the log-likelihood
    # then rewards spikes on the repeated values. That matters most when
    # log-likelihoods are compared between models; here each model only ranks rows.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DegenerateDataWarning)
        detector.fit(X_train)
    fit_times[name] = time.perf_counter() - start
    anomaly_scores[name] = -detector.score_samples(X_test)

# %% [markdown]
# ## The table

# %%
rows = [
    [name, f"{roc_auc_score(y_test, score):.3f}",
     f"{average_precision_score(y_test, score):.3f}", f"{fit_times[name]:.1f}"]
    for name, score in anomaly_scores.items()
]
print(markdown_table(["detector", "ROC-AUC", "average precision", "fit time (s)"], rows))
print(f"(average precision of a random ranking: {y_test.mean():.3f})")

# %% [markdown]
# ## The figure: ROC and precision-recall curves
#
# With few anomalies the precision-recall curve is the more telling one: a
# false-positive rate of 10% already flags more normal rows than there are
# anomalies.

# %%
figure, (roc_axes, pr_axes) = plt.subplots(1, 2, figsize=(11, 6))
for name, score in anomaly_scores.items():
    false_positive_rate, true_positive_rate, _ = roc_curve(y_test, score)
    roc_axes.plot(false_positive_rate, true_positive_rate,
                  label=f"{name} (AUC {roc_auc_score(y_test, score):.3f})")
    precision, recall, _ = precision_recall_curve(y_test, score)
    pr_axes.plot(recall, precision,
                 label=f"{name} (AP {average_precision_score(y_test, score):.3f})")
roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
roc_axes.set(title="ROC curves", xlabel="false-positive rate", ylabel="true-positive rate")
pr_axes.axhline(y_test.mean(), color="grey", linestyle=":", label="chance")
pr_axes.set(title="precision-recall curves", xlabel="recall", ylabel="precision")
# Legends under the axes, where they cover no curve.
for axes in (roc_axes, pr_axes):
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="small")
figure.suptitle(f"Anomaly detection on {data.name} (held-out half)")
figure.tight_layout()
save_figure(figure, settings, "anomaly_detection")
