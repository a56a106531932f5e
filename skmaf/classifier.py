"""MAFClassifier: Bayes classification with a class-conditional MAF, p(x | class)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _dequantization
from ._base import _check_columns
from ._conditional import BaseConditionalMAF
from ._docstrings import fill_docstring
from ._flow_estimator import unchanged_on_error, validate_draw
from ._preprocessing import RunningMoments
from ._runtime.device import resolve_device
from ._runtime.threads import torch_threads_within_budget

__all__ = ["MAFClassifier"]


@fill_docstring
class MAFClassifier(ClassifierMixin, BaseConditionalMAF):
    """Bayes classification with a class-conditional Masked Autoregressive Flow.

    One MAF over ``x`` whose every MADE also sees the one-hot class (the MAF
    paper's conditional MAF, section 4.4, as in its MNIST and CIFAR-10
    experiments): a density ``p(x | c)`` for every class, and by Bayes' rule
    with the priors ``p(c)`` the class probabilities
    ``p(c | x) = p(x | c) p(c) / sum_k p(x | k) p(k)``. It is also a density
    estimator of ``x``: :meth:`score_samples` is ``log sum_c p(c) p(x | c)``,
    so a model fitted on labelled normal data scores anomalies without their
    labels, and :meth:`sample` generates rows of a chosen class.

    The data are standardised internally with the standardisation's Jacobian,
    so densities are in the units of ``x``; integer-valued columns are
    dequantized as by :class:`MAFDensity`.

    Parameters
    ----------
    %(maf_architecture)s
    priors : array-like of shape (n_classes,), default=None
        Prior probabilities of the classes, in the order of ``classes_``. None:
        the class frequencies of the training data (as
        :class:`~sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis`).
    %(dequantize_parameter)s
    %(training_parameters)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    class_prior_ : ndarray of shape (n_classes,)
        The priors used, in the order of ``classes_``.
    %(model_attributes)s
    shift_, scale_ : ndarray of shape (n_features_in_,)
        Internal standardisation ``z = (x - shift_) / scale_``; its log-Jacobian
        is part of every log-density.
    dequantized_features_ : ndarray of int
        Indices of the columns dequantized (see ``dequantize``).
    %(training_attributes)s
    %(feature_attributes)s

    See Also
    --------
    sklearn.naive_bayes.GaussianNB : Bayes classification with independent
        Gaussian features; ``predict_joint_log_proba`` has its convention.
    sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis : One Gaussian
        per class.
    MAFRegressor : The conditional MAF for p(y | x).

    Notes
    -----
    Scoring a row evaluates the flow once per class, so
    :meth:`predict_proba` costs ``n_classes`` density evaluations.

    %(far_from_the_data)s

    References
    ----------
    G. Papamakarios, T. Pavlakou and I. Murray, "Masked Autoregressive Flow for
    Density Estimation", NeurIPS 2017, sections 4.4 and E.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import MAFClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(-2, 1, size=(100, 2)), rng.normal(2, 1, size=(100, 2))])
    >>> y = np.repeat(["a", "b"], 100)
    >>> model = MAFClassifier(n_transforms=2, n_hidden_units=8, max_iter=20,
    ...                       random_state=0).fit(X, y)
    >>> model.predict([[-2.0, -2.0], [2.0, 2.0]])
    array(['a', 'b'], dtype='<U1')
    >>> model.predict_proba([[0.0, 0.0]]).shape
    (1, 2)
    >>> X_new, y_new = model.sample(4, y=["b", "b", "a", "a"], random_state=0)
    >>> y_new
    array(['b', 'b', 'a', 'a'], dtype='<U1')
    """

    _parameter_constraints: dict = {
        **BaseConditionalMAF._parameter_constraints,
        "priors": ["array-like", None],
        "dequantize": [StrOptions({"auto"}), "array-like", None],
    }

    def __init__(
        self,
        n_transforms=5,
        *,
        n_hidden_layers=1,
        n_hidden_units=100,
        activation="relu",
        batch_norm=True,
        input_order="sequential",
        n_components=1,
        tail_weight=1e-4,
        priors=None,
        dequantize="auto",
        max_iter=200,
        batch_size=100,
        learning_rate="constant",
        learning_rate_init=1e-3,
        alpha=1.0,
        ema_decay=0.99,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        tol=1e-4,
        device="auto",
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.n_transforms = n_transforms
        self.n_hidden_layers = n_hidden_layers
        self.n_hidden_units = n_hidden_units
        self.activation = activation
        self.batch_norm = batch_norm
        self.input_order = input_order
        self.n_components = n_components
        self.tail_weight = tail_weight
        self.priors = priors
        self.dequantize = dequantize
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.ema_decay = ema_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit ``p(x | c)`` for every class by maximum likelihood, and the priors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, all finite.
        y : array-like of shape (n_samples,)
            Class labels (any labels scikit-learn accepts, strings included).

        Returns
        -------
        self : object
            The fitted classifier.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 3, 100)
        >>> MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...               random_state=0).fit(X, y).classes_
        array([0, 1, 2])
        """
        with unchanged_on_error(self), torch_threads_within_budget():
            X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
            check_classification_targets(y)
            encoder = LabelEncoder().fit(y)
            codes = encoder.transform(y)
            n_classes = len(encoder.classes_)
            prior = self._validated_priors(np.bincount(codes, minlength=n_classes) / len(y))
            dequantized = _dequantization.resolve_dequantized(
                self.dequantize, X, getattr(self, "feature_names_in_", None))
            device = resolve_device(self.device)
            rng = check_random_state(self.random_state)
            flow = self._new_flow(X.shape[1], rng, n_context_features=n_classes)
            moments = RunningMoments.of(X)
            standardizer = moments.standardizer()
            _check_columns(X, moments, standardizer, dequantized)
            self._train_and_freeze(
                flow, standardizer.forward(X), rng, device, log_det_offset=standardizer.log_det,
                context=np.eye(n_classes)[codes],
                noise_width=_dequantization.noise_width(dequantized, standardizer.scale))
            self.classes_ = encoder.classes_
            self.class_prior_ = prior
            self.shift_, self.scale_ = standardizer.shift, standardizer.scale
            self.dequantized_features_ = dequantized
        return self

    def _validated_priors(self, frequencies: np.ndarray) -> np.ndarray:
        if self.priors is None:
            return frequencies
        priors = np.asarray(self.priors, dtype=np.float64)
        if priors.shape != frequencies.shape:
            raise ValueError(f"priors must have one entry per class ({len(frequencies)}); "
                             f"got shape {priors.shape}.")
        if np.any(priors < 0) or not np.isclose(priors.sum(), 1.0):
            raise ValueError(f"priors must be non-negative and sum to 1; got {priors}.")
        return priors

    # ---------------------------------------------------------- evaluation
    def _class_log_densities(self, X) -> np.ndarray:
        """``log p(x_i | c)`` for every row and class, shape (n, n_classes), in x's units
        (cell probabilities in the dequantized columns)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        n_classes = len(self.classes_)
        log_det = -np.sum(np.log(self.scale_))

        def log_density(rows):
            Z = (rows - self.shift_) / self.scale_
            return np.column_stack([
                self._conditional_log_prob(Z, np.tile(np.eye(n_classes)[c], (len(Z), 1)))
                for c in range(n_classes)]) + log_det

        columns = self.dequantized_features_
        if not len(columns):
            return log_density(X)
        return _dequantization.cell_log_probability(log_density, X, columns)

    def predict_joint_log_proba(self, X):
        """``log p(x, c) = log p(x | c) + log p(c)`` for every row and class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        joint_log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> model.predict_joint_log_proba(X[:3]).shape
        (3, 2)
        """
        log_densities = self._class_log_densities(X)
        with np.errstate(divide="ignore"):  # a zero prior: log 0 = -inf
            return log_densities + np.log(self.class_prior_)

    def predict_log_proba(self, X):
        """``log p(c | x)`` by Bayes' rule (a log-sum-exp over the classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> bool(np.allclose(np.exp(model.predict_log_proba(X[:3])).sum(axis=1), 1))
        True
        """
        joint = self.predict_joint_log_proba(X)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def predict_proba(self, X):
        """``p(c | x)`` for every row and class; rows sum to 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> model.predict_proba(X[:3]).shape
        (3, 2)
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> model.predict(X[:3]).shape
        (3,)
        """
        joint = self.predict_joint_log_proba(X)
        return self.classes_[np.argmax(joint, axis=1)]

    def score_samples(self, X):
        """The marginal log-density ``log sum_c p(c) p(x | c)`` of each row.

        Labels are not needed: a model fitted on labelled normal data scores
        new rows, anomalies included, by their density under every class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> model.score_samples(X[:3]).shape
        (3,)
        """
        return logsumexp(self.predict_joint_log_proba(X), axis=1)

    def sample(self, n_samples=1, y=None, random_state=None):
        """Draw rows and their classes, as ``GaussianMixture.sample`` returns them.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows; ignored when ``y`` is given.
        y : array-like of shape (n_rows,), default=None
            The class of every row to draw (class-conditional generation, the
            paper's figures 2 and 3). None: classes drawn from ``class_prior_``.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; the same seed gives the same rows on any device.

        Returns
        -------
        X : ndarray of shape (n_rows, n_features)
            Integers in the dequantized columns.
        y : ndarray of shape (n_rows,)
            Their classes.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFClassifier
        >>> rng = np.random.RandomState(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.randint(0, 2, 100)
        >>> model = MAFClassifier(n_transforms=1, n_hidden_units=8, max_iter=2,
        ...                       random_state=0).fit(X, y)
        >>> X_new, y_new = model.sample(5, random_state=0)
        >>> X_new.shape, y_new.shape
        ((5, 2), (5,))
        """
        check_is_fitted(self)
        validate_draw(n_samples, random_state, "sample")
        rng = check_random_state(random_state)
        if y is None:
            codes = rng.choice(len(self.classes_), size=n_samples, p=self.class_prior_)
        else:
            labels = np.asarray(y)
            unknown = np.setdiff1d(labels, self.classes_)
            if labels.ndim != 1 or not len(labels) or len(unknown):
                raise ValueError(f"y must be a non-empty 1-D array of labels among "
                                 f"classes_ {self.classes_.tolist()}; got {y!r}.")
            codes = np.searchsorted(self.classes_, labels)
        Z = self._sample_targets(np.eye(len(self.classes_))[codes], rng)
        X = Z * self.scale_ + self.shift_
        columns = self.dequantized_features_
        X[:, columns] = np.floor(X[:, columns])
        return X, self.classes_[codes]
