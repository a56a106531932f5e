"""DensityOutlierDetector: any density estimator as a scikit-learn outlier detector."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._flow_estimator import unchanged_on_error
from .maf import MAFDensity

__all__ = ["DensityOutlierDetector"]


class DensityOutlierDetector(OutlierMixin, MetaEstimatorMixin, BaseEstimator):
    """Outlier detection by thresholding the log-density of a density estimator.

    A row is an outlier when the fitted density is low there: the anomaly
    score is the log-density itself, and the threshold is the ``contamination``
    quantile of the training rows' log-densities, as in
    :class:`~sklearn.ensemble.IsolationForest` with a float ``contamination``.

    Parameters
    ----------
    estimator : estimator object, default=None
        The density estimator: anything with ``fit`` and a ``score_samples``
        that returns log-densities, e.g. :class:`~skmaf.MAFDensity`,
        :class:`~sklearn.mixture.GaussianMixture` or
        :class:`~sklearn.neighbors.KernelDensity`. It is cloned before fitting.
        ``None`` means ``MAFDensity()``.
    contamination : float, default=0.1
        Expected proportion of outliers in the training data, in (0, 0.5]; the
        fraction of training rows that :meth:`predict` labels -1. It sets only
        the threshold ``offset_``, never the scores. There is no ``"auto"``
        (IsolationForest's default): its isolation score has a natural
        scale-free threshold, but a log-density does not, since its values
        shift with the units and the number of features. 0.1 is
        :class:`~sklearn.covariance.EllipticEnvelope`'s default, the other
        density-based detector in scikit-learn.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted clone of ``estimator``.
    offset_ : float
        The ``contamination`` quantile of the training log-densities;
        ``decision_function(X) = score_samples(X) - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Outlier detection by random isolation.
    sklearn.neighbors.LocalOutlierFactor : Outlier detection by local density.
    sklearn.covariance.EllipticEnvelope : Outlier detection under a Gaussian.

    Notes
    -----
    Log-densities are comparable only under one fitted model: they are in the
    units of the training data, so rescaling a feature shifts every score by
    the same constant and leaves ``predict`` unchanged.

    The inner estimator receives float64 arrays without column names; column
    names are checked by this detector.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import DensityOutlierDetector, MAFDensity
    >>> X = np.random.RandomState(0).normal(size=(200, 2))
    >>> detector = DensityOutlierDetector(
    ...     MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5, random_state=0),
    ...     contamination=0.1,
    ... ).fit(X)
    >>> float(np.mean(detector.predict(X) == -1))
    0.1
    >>> detector.predict([[0.0, 0.0], [10.0, 10.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"]), None],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
    }

    def __init__(self, estimator=None, *, contamination=0.1):
        self.estimator = estimator
        self.contamination = contamination

    # The inner estimator validates its own parameters when it is fitted.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the density estimator and set the threshold ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, all finite. Outliers may be among them: that is
            what ``contamination`` is for.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted detector.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.mixture import GaussianMixture
        >>> from skmaf import DensityOutlierDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> detector = DensityOutlierDetector(GaussianMixture(random_state=0)).fit(X)
        >>> detector.n_features_in_
        2
        """
        # validate_data(reset=True) sets n_features_in_ before the inner fit can
        # fail; a failed refit must leave a fitted detector as it was.
        with unchanged_on_error(self):
            X = validate_data(self, X, dtype=np.float64)
            estimator = MAFDensity() if self.estimator is None else clone(self.estimator)
            estimator.fit(X)
            offset = np.percentile(_log_density(estimator, X), 100.0 * self.contamination)
            self.estimator_ = estimator
            self.offset_ = float(offset)
        return self

    def score_samples(self, X):
        """Log-density of each row of ``X`` under the fitted estimator.

        Higher means more normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The inner estimator's ``score_samples``, as float64.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.mixture import GaussianMixture
        >>> from skmaf import DensityOutlierDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> detector = DensityOutlierDetector(GaussianMixture(random_state=0)).fit(X)
        >>> scores = detector.score_samples([[0.0, 0.0], [5.0, 5.0]])
        >>> bool(scores[0] > scores[1])
        True
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return _log_density(self.estimator_, X)

    def decision_function(self, X):
        """Log-density minus ``offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.mixture import GaussianMixture
        >>> from skmaf import DensityOutlierDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> detector = DensityOutlierDetector(GaussianMixture(random_state=0)).fit(X)
        >>> detector.decision_function([[0.0, 0.0], [5.0, 5.0]]) > 0
        array([ True, False])
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label each row of ``X``: 1 for an inlier, -1 for an outlier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            -1 where ``decision_function(X) < 0``, else 1.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.mixture import GaussianMixture
        >>> from skmaf import DensityOutlierDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> detector = DensityOutlierDetector(GaussianMixture(random_state=0)).fit(X)
        >>> detector.predict([[0.0, 0.0], [5.0, 5.0]])
        array([ 1, -1])
        """
        return np.where(self.decision_function(X) < 0, -1, 1)


def _log_density(estimator, X: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.score_samples(X), dtype=np.float64)
