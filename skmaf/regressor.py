"""MAFRegressor: probabilistic regression with a conditional MAF, p(y | x)."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, validate_data

from ._conditional import BaseConditionalMAF
from ._docstrings import fill_docstring
from ._flow_estimator import unchanged_on_error, validate_draw
from ._preprocessing import RunningMoments
from ._quantiles import invert_increasing
from ._runtime.chunks import SCORING_CHUNK_SIZE
from ._runtime.device import resolve_device
from ._runtime.threads import torch_threads_within_budget
from .flows.mixture import mixture_cdf

__all__ = ["MAFRegressor"]

#: Quantiles are found to this tolerance, in standard deviations of the training y.
QUANTILE_TOLERANCE = 1e-8


@fill_docstring
class MAFRegressor(RegressorMixin, BaseConditionalMAF):
    """Probabilistic regression with a conditional Masked Autoregressive Flow, p(y | x).

    A MAF over the targets whose every MADE also sees ``x`` at every hidden
    layer (the MAF paper's section 4.4): one estimator for the whole predictive
    distribution. :meth:`log_density` gives ``log p(y | x)``, :meth:`predict` the
    conditional median, :meth:`predict_quantiles` and :meth:`predict_interval`
    exact quantiles, :meth:`sample_y` draws. :meth:`score` is R², as for every
    scikit-learn regressor; to select models by likelihood, use
    ``scoring=skmaf.metrics.log_likelihood_scorer``.

    ``x`` is standardised internally (it is only conditioned on); ``y`` is
    standardised with its Jacobian, so densities are in y's own units.

    Parameters
    ----------
    %(maf_architecture)s
    %(training_parameters)s

    Attributes
    ----------
    %(model_attributes)s
    x_shift_, x_scale_ : ndarray of shape (n_features_in_,)
        Standardisation of the inputs, ``(x - x_shift_) / x_scale_``.
    y_shift_, y_scale_ : ndarray of shape (n_targets_,)
        Standardisation of the targets; its log-Jacobian is part of every
        log-density.
    n_targets_ : int
        Number of targets (columns of y).
    %(training_attributes)s
    %(feature_attributes)s

    See Also
    --------
    sklearn.gaussian_process.GaussianProcessRegressor : Gaussian predictive
        distributions; ``sample_y`` has its conventions.
    sklearn.ensemble.HistGradientBoostingRegressor : Quantiles one at a time
        with ``loss="quantile"``.
    MAFClassifier : The class-conditional MAF.

    Notes
    -----
    With one target every MADE step is ``u = (y - mu(x)) exp(-alpha(x))``,
    affine in y, so however many steps there are, the flow alone makes
    ``p(y | x)`` a Gaussian whose mean and variance depend on x. Skewed,
    heavy-tailed or multimodal conditionals come from the base density:
    ``n_components`` Gaussians whose weights, means and scales depend on x (a
    mixture density network under the flow). The default, 5 components, was
    chosen on skewed and bimodal problems (``benchmarks/README.md``,
    "Conditional MAF"). With several targets the flow also models how they
    depend on each other.

    Quantiles of one target are exact up to a tolerance of 1e-8 standard
    deviations of the training y: the conditional CDF, the base's CDF of the
    flow's output, is increasing in y and is inverted by bisection.

    %(far_from_the_data)s

    References
    ----------
    G. Papamakarios, T. Pavlakou and I. Murray, "Masked Autoregressive Flow for
    Density Estimation", NeurIPS 2017, section 4.4.

    Examples
    --------
    >>> import numpy as np
    >>> from skmaf import MAFRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(400, 1))
    >>> y = X[:, 0] ** 2 + rng.exponential(0.5, size=400)
    >>> model = MAFRegressor(n_transforms=2, n_hidden_units=16, max_iter=20,
    ...                      random_state=0).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    >>> model.predict_interval(X[:3], coverage=0.9).shape
    (3, 2)
    >>> model.sample_y(X[:3], n_samples=5, random_state=0).shape
    (3, 5)
    """

    def __init__(
        self,
        n_transforms=5,
        *,
        n_hidden_layers=1,
        n_hidden_units=100,
        activation="relu",
        batch_norm=True,
        input_order="sequential",
        n_components=5,
        tail_weight=1e-4,
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit ``p(y | x)`` by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs, all finite.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets, all finite.

        Returns
        -------
        self : object
            The fitted regressor.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 2))
        >>> y = X[:, 0] + rng.normal(size=200)
        >>> MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...              random_state=0).fit(X, y).n_targets_
        1
        """
        with unchanged_on_error(self), torch_threads_within_budget():
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                                 dtype=np.float64, ensure_min_samples=2)
            Y = y.reshape(len(y), -1).astype(np.float64)
            device = resolve_device(self.device)
            rng = check_random_state(self.random_state)
            flow = self._new_flow(Y.shape[1], rng, n_context_features=X.shape[1])
            x_standardizer = RunningMoments.of(X).standardizer()
            y_standardizer = RunningMoments.of(Y).standardizer()
            self._train_and_freeze(flow, y_standardizer.forward(Y), rng, device,
                                   log_det_offset=y_standardizer.log_det,
                                   context=x_standardizer.forward(X))
            self.x_shift_, self.x_scale_ = x_standardizer.shift, x_standardizer.scale
            self.y_shift_, self.y_scale_ = y_standardizer.shift, y_standardizer.scale
            self.n_targets_ = Y.shape[1]
            self._y_is_1d = y.ndim == 1
        return self

    # ---------------------------------------------------------- evaluation
    def _context(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.x_shift_) / self.x_scale_

    def log_density(self, X, y):
        """``log p(y_i | x_i)`` of each row, in the units of y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 1))
        >>> y = X[:, 0] + rng.normal(size=200)
        >>> model = MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...                      random_state=0).fit(X, y)
        >>> model.log_density(X[:4], y[:4]).shape
        (4,)
        """
        C = self._context(X)
        Y = np.asarray(y, dtype=np.float64).reshape(len(C), -1) if np.ndim(y) else None
        if Y is None or Y.shape[1] != self.n_targets_ or not np.isfinite(Y).all():
            raise ValueError(f"y must be a finite array of {len(C)} rows and "
                             f"{self.n_targets_} target(s), like the y it was fitted on.")
        Z = (Y - self.y_shift_) / self.y_scale_
        return self._conditional_log_prob(Z, C) - np.sum(np.log(self.y_scale_))

    def _shaped_like_y(self, values: np.ndarray) -> np.ndarray:
        """(n, n_targets) predictions as y was given: 1-D for a 1-D y."""
        return values[:, 0] if self._y_is_1d else values

    def predict(self, X):
        """The conditional median of y given each row of ``X``.

        For one target, the median of ``p(y | x)``, exact to 1e-8 standard
        deviations of the training y (the 0.5 column of
        :meth:`predict_quantiles`). For several, the image of the base density's
        centre under the inverse flow: the point whose every coordinate, in the
        order of the model's last layer, is the median of its base conditional
        given the coordinates before it; for a Gaussian base, the flow's
        inverse at ``u = 0``. It is a point where the density is high, not the
        vector of marginal medians (:meth:`sample_y` estimates those).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Shaped like the y the model was fitted on.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 1))
        >>> y = 2 * X[:, 0] + rng.normal(size=200)
        >>> model = MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...                      random_state=0).fit(X, y)
        >>> model.predict(X[:2]).shape
        (2,)
        """
        C = self._context(X)
        if self.n_targets_ == 1:
            Z = self._standardised_quantiles(C, np.array([0.5]))
        else:
            Z = self._centre(C)
        return self._shaped_like_y(Z * self.y_scale_ + self.y_shift_)

    def predict_quantiles(self, X, quantiles):
        """Quantiles of the conditional distribution of one target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        quantiles : array-like of shape (n_quantiles,)
            Levels in (0, 1).

        Returns
        -------
        y_quantiles : ndarray of shape (n_samples, n_quantiles)
            Exact to 1e-8 standard deviations of the training y.

        Raises
        ------
        ValueError
            For a model of several targets, whose joint distribution has no
            quantiles; :meth:`sample_y` draws from it.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 1))
        >>> y = X[:, 0] + rng.normal(size=200)
        >>> model = MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...                      random_state=0).fit(X, y)
        >>> model.predict_quantiles(X[:2], [0.1, 0.5, 0.9]).shape
        (2, 3)
        """
        C = self._context(X)
        levels = np.asarray(quantiles, dtype=np.float64)
        if levels.ndim != 1 or not len(levels) or not np.all((levels > 0) & (levels < 1)):
            raise ValueError(f"quantiles must be a non-empty 1-D array of levels in (0, 1); "
                             f"got {quantiles!r}.")
        if self.n_targets_ != 1:
            raise ValueError(
                f"predict_quantiles is defined for one target; this model has "
                f"{self.n_targets_}. Use sample_y for draws from their joint "
                "distribution (and their marginal quantiles).")
        return self._standardised_quantiles(C, levels) * self.y_scale_[0] + self.y_shift_[0]

    def predict_interval(self, X, coverage=0.9):
        """The central interval of the conditional distribution of one target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float in (0, 1), default=0.9
            Probability the interval holds: its ends are the quantiles
            ``(1 - coverage) / 2`` and ``(1 + coverage) / 2``.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2)
            Lower and upper ends.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 1))
        >>> y = X[:, 0] + rng.normal(size=200)
        >>> model = MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...                      random_state=0).fit(X, y)
        >>> low, high = model.predict_interval(X[:1], coverage=0.9)[0]
        >>> bool(low < high)
        True
        """
        validate_parameter_constraints(
            {"coverage": [Interval(Real, 0, 1, closed="neither")]}, {"coverage": coverage},
            caller_name="predict_interval")
        tail = (1.0 - coverage) / 2
        return self.predict_quantiles(X, [tail, 1.0 - tail])

    def sample_y(self, X, n_samples=1, random_state=None):
        """Draw targets from ``p(y | x)`` for each row of ``X``.

        ``GaussianProcessRegressor.sample_y``'s conventions and shapes.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        n_samples : int, default=1
            Draws per row.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; the same seed gives the same draws on any device.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples) or \
                (n_samples_X, n_targets, n_samples)
            The first for a model fitted on a 1-D y.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(200, 1))
        >>> y = np.column_stack([X[:, 0], -X[:, 0]]) + rng.normal(size=(200, 2))
        >>> model = MAFRegressor(n_transforms=1, n_hidden_units=8, max_iter=5,
        ...                      random_state=0).fit(X, y)
        >>> model.sample_y(X[:3], n_samples=4, random_state=0).shape
        (3, 2, 4)
        """
        C = self._context(X)
        validate_draw(n_samples, random_state, "sample_y")
        rng = check_random_state(random_state)
        Z = self._sample_targets(np.repeat(C, n_samples, axis=0), rng)
        Y = (Z * self.y_scale_ + self.y_shift_).reshape(len(C), n_samples, self.n_targets_)
        Y = Y.transpose(0, 2, 1)
        return Y[:, 0, :] if self._y_is_1d else Y

    # ----------------------------------------------------------- internals
    def _standardised_quantiles(self, C: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Quantiles of the standardised target, shape (n, len(levels))."""
        flow = self.module_
        n_rows, n_levels = len(C), len(levels)
        context = np.repeat(C, n_levels, axis=0)

        def conditional_cdf(z):
            def cdf(rows):
                u, _ = flow(rows[:, :1], rows[:, 1:])
                return flow.base.conditional_cdf(u, rows[:, 1:])[:, 0]
            return self._evaluate(cdf, np.hstack([z.reshape(-1, 1), context]),
                                  SCORING_CHUNK_SIZE).reshape(n_rows, n_levels)

        targets = np.broadcast_to(levels, (n_rows, n_levels))
        return invert_increasing(conditional_cdf, targets, QUANTILE_TOLERANCE)

    def _centre(self, C: np.ndarray) -> np.ndarray:
        """The inverse flow at the base's sequential conditional medians."""
        flow = self.module_

        def centre(context):
            base = flow.base
            if base.has_zero_medians:
                u = context.new_zeros(len(context), self.n_targets_)
            else:
                u = base.made.sample_sequentially(
                    _median_of_mixture(base), len(context), like=context, context=context)
            return flow.from_base(u, context)

        with torch.no_grad():
            return self._evaluate(centre, C, SCORING_CHUNK_SIZE)


def _median_of_mixture(base):
    """``decide(i, params)`` for :meth:`MADE.sample_sequentially`: the median of
    coordinate i's mixture, by bisection on its CDF."""

    def decide(i, params):
        logits, means, log_scales = base.split(params[:, :, None])  # each (n, C, 1)

        def cdf(u):
            values = torch.as_tensor(u, dtype=means.dtype, device=means.device)[:, None]
            return mixture_cdf(values, logits, means, log_scales)[:, 0].cpu().numpy()

        start = float(means.abs().max() + 10 * log_scales.exp().max())
        return torch.as_tensor(
            invert_increasing(cdf, np.full(len(params), 0.5), QUANTILE_TOLERANCE, start=start),
            dtype=means.dtype, device=means.device)

    return decide
