"""Scorers for model selection with skmaf's estimators."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

__all__ = ["anomaly_roc_auc_scorer", "log_likelihood_scorer"]


def log_likelihood_scorer(estimator, X, y=None) -> float:
    """The mean held-out log-likelihood per row, as a scorer (higher is better).

    For ``GridSearchCV(scoring=log_likelihood_scorer)``, ``cross_validate`` and
    friends:

    - a conditional model (:class:`~skmaf.MAFRegressor`, anything with a
      ``log_density(X, y)``) scores ``mean(estimator.log_density(X, y))``, the
      mean ``log p(y | x)``, where its own ``score`` is R²;
    - a density estimator (skmaf's, ``GaussianMixture``, ``KernelDensity``)
      scores ``mean(estimator.score_samples(X))``, which makes the choice by
      likelihood explicit whatever ``score`` means (``KernelDensity.score`` is
      the total, not the mean).

    A ``Pipeline`` ending in either is scored through its last step, after its
    transformers.

    Parameters
    ----------
    estimator : fitted estimator with ``log_density`` or ``score_samples``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets), default=None
        The targets, for a conditional model; ignored by a density estimator.

    Returns
    -------
    mean_log_likelihood : float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.neighbors import KernelDensity
    >>> from skmaf.metrics import log_likelihood_scorer
    >>> X = np.random.RandomState(0).normal(size=(300, 1))
    >>> search = GridSearchCV(KernelDensity(), {"bandwidth": [0.05, 0.5]},
    ...                       scoring=log_likelihood_scorer).fit(X)
    >>> search.best_params_
    {'bandwidth': 0.5}
    """
    while isinstance(estimator, Pipeline) and not hasattr(estimator, "log_density"):
        X = estimator[:-1].transform(X) if len(estimator) > 1 else X
        estimator = estimator[-1]
    if hasattr(estimator, "log_density"):
        if y is None:
            raise ValueError(f"{type(estimator).__name__} is a conditional model: "
                             "log_likelihood_scorer needs the targets y.")
        return float(np.mean(estimator.log_density(X, y)))
    return float(np.mean(estimator.score_samples(X)))


def anomaly_roc_auc_scorer(anomaly_label=1):
    """A scorer ``(estimator, X, y) -> float``: the ROC-AUC of ranking anomalies first.

    ``GridSearchCV(scoring="roc_auc")`` on an outlier detector computes the AUC
    of ``decision_function`` (high for inliers) against the positive label,
    so it is right only with scikit-learn's convention (1 inlier, -1
    outlier); with the ADBench convention (1 = anomaly, 0 = normal) it ranks
    the models backwards and picks the worst. This scorer takes the label that
    marks an anomaly explicitly and scores the estimator's ``score_samples``
    (log-density: lower is more anomalous), so it fits both conventions.

    Parameters
    ----------
    anomaly_label : int or str, default=1
        The value of ``y`` that marks an anomaly: 1 for ADBench's files, -1 for
        scikit-learn's outlier labels.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, higher is better, for ``GridSearchCV``,
        ``cross_validate`` and friends (``scoring=scorer``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from skmaf import DensityOutlierDetector
    >>> from skmaf.metrics import anomaly_roc_auc_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(size=(95, 2)), rng.normal(6, 1, size=(5, 2))])
    >>> y = np.r_[np.zeros(95), np.ones(5)]  # 1 = anomaly
    >>> detector = DensityOutlierDetector(GaussianMixture(random_state=0)).fit(X)
    >>> anomaly_roc_auc_scorer(anomaly_label=1)(detector, X, y)
    1.0
    """

    def score(estimator, X, y) -> float:
        is_anomaly = np.asarray(y) == anomaly_label
        if is_anomaly.all() or not is_anomaly.any():
            raise ValueError(
                f"anomaly_roc_auc_scorer needs both anomalies (y == {anomaly_label!r}) and "
                "normal rows among the labels it scores.")
        return float(roc_auc_score(is_anomaly, -np.asarray(estimator.score_samples(X))))

    return score
