"""The estimator layer shared by every skmaf density: fit, score, sample, map, persist.

A subclass supplies its parameters, their constraints and ``_build_flow``; it
never touches validation, preprocessing, training or devices. This module
knows the :class:`~skmaf.flows.Flow` protocol and no concrete transform.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state, check_scalar
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import (
    CHUNK_SIZE,
    evaluate_in_chunks,
    module_from_bytes,
    module_to_bytes,
    resolve_device,
)
from ._preprocessing import Standardizer
from ._training import TrainingOptions, train_flow
from .flows import Flow, count_connections

__all__ = ["BaseFlowDensity"]


@contextmanager
def _unchanged_on_error(estimator):
    """Restore ``estimator.__dict__`` if the block raises.

    ``validate_data(reset=True)`` sets ``n_features_in_`` before it can fail, so
    without this a bad refit would leave a fitted estimator half-changed.
    """
    saved = estimator.__dict__.copy()
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def _has_gaussian_base(estimator) -> bool:
    return estimator._has_gaussian_base()


class BaseFlowDensity(
    ClassNamePrefixFeaturesOutMixin, DensityMixin, TransformerMixin, BaseEstimator,
    metaclass=ABCMeta,
):
    """Base class of the skmaf density estimators. Not for direct use."""

    _parameter_constraints: dict = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: Smallest number of features the model can be built for.
    _min_features = 1

    @abstractmethod
    def _build_flow(self, n_features: int, generator: torch.Generator) -> Flow:
        """Build the untrained float32 model for ``n_features`` inputs.

        Raises ``ValueError`` for parameters that do not fit the data (e.g. an
        input order of the wrong length). All randomness comes from ``generator``.
        """

    def _has_gaussian_base(self) -> bool:
        """Whether the model maps data one-to-one onto standard normal noise."""
        return True

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the density model to ``X`` by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two rows, all finite.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> model.n_features_in_
        2
        """
        with _unchanged_on_error(self):
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                              ensure_min_features=self._min_features)
            X = X.astype(np.float64, copy=False)
            device = resolve_device(self.device)
            rng = check_random_state(self.random_state)
            generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
            flow = self._build_flow(X.shape[1], generator)

            standardizer = Standardizer.fit(X)
            _warn_about_degenerate_columns(X)
            Z = standardizer.forward(X)
            Z_train, Z_val = Z, None
            if self.early_stopping:
                Z_train, Z_val = train_test_split(
                    Z, test_size=self.validation_fraction, random_state=rng
                )
            result = train_flow(
                flow.to(device),
                torch.from_numpy(Z_train.astype(np.float32)),
                None if Z_val is None else torch.from_numpy(Z_val.astype(np.float32)),
                self._training_options(),
                rng,
                device,
                log_det_offset=standardizer.log_det,
            )
            # Train in float32 for speed, evaluate in float64 so that a row
            # scores the same alone as inside any batch (float32 BLAS differs
            # by up to 4e-5 between batch shapes). Batch norm is frozen on the
            # whole training set, as in the paper's appendix B.
            flow = flow.double()
            flow.freeze_statistics(torch.from_numpy(Z_train), CHUNK_SIZE)
            flow.requires_grad_(False)

            self.module_ = flow
            self.device_ = device
            self.n_parameters_ = count_connections(flow)
            self.shift_ = standardizer.shift
            self.scale_ = standardizer.scale
            self.n_iter_ = result.n_iter
            self.best_iter_ = result.best_iter
            self.loss_curve_ = result.loss_curve
            self.validation_scores_ = result.validation_scores
            self.best_validation_score_ = result.best_validation_score
        return self

    def _training_options(self) -> TrainingOptions:
        return TrainingOptions(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate_init,
            alpha=self.alpha,
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=self.verbose,
        )

    # ---------------------------------------------------------- evaluation
    def _standardized(self, X) -> torch.Tensor:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        Z = Standardizer(self.shift_, self.scale_).forward(X.astype(np.float64, copy=False))
        return torch.from_numpy(np.ascontiguousarray(Z))

    def _evaluate(self, function, Z: torch.Tensor) -> np.ndarray:
        return evaluate_in_chunks(function, Z, self.device_, torch.float64).numpy()

    def score_samples(self, X):
        """Log-density of each row of ``X``, in the units of the training data.

        The internal standardisation's log-Jacobian is included, so the values
        are log-densities of the data as given.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            Finite for finite input.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> model.score_samples(X[:3]).shape
        (3,)
        """
        Z = self._standardized(X)  # checks fitted-ness before module_ is touched
        log_prob = self._evaluate(self.module_.log_prob, Z)
        # The model's log-determinant is bounded (clamped log-scales, frozen batch
        # norm), so a non-finite value can only come from |u| overflowing float64
        # for an astronomically distant row, whose true log-density is below
        # -1e300: -inf is its correctly rounded value.
        log_prob[~np.isfinite(log_prob)] = -np.inf
        return log_prob + Standardizer(self.shift_, self.scale_).log_det

    def score(self, X, y=None):
        """Mean log-likelihood per sample of ``X`` (GaussianMixture's convention).

        Higher is better, so ``GridSearchCV`` selects by held-out log-likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        mean_log_likelihood : float

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> isinstance(model.score(X), float)
        True
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted density, in the units of the training data.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        random_state : int, RandomState instance or None, default=None
            Seed of the draw; the same seed gives the same samples on any device.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> model.sample(4, random_state=0).shape
        (4, 2)
        """
        check_is_fitted(self)
        check_scalar(n_samples, "n_samples", Integral, min_val=1)
        rng = check_random_state(random_state)
        chunks = []
        with torch.no_grad():
            for start in range(0, n_samples, CHUNK_SIZE):
                size = min(CHUNK_SIZE, n_samples - start)
                chunks.append(self.module_.sample(size, rng).cpu().numpy())
        return Standardizer(self.shift_, self.scale_).inverse(np.concatenate(chunks))

    def transform(self, X):
        """Map data to the flow's base variables ``u = f^-1(x)``.

        When the model fits, the rows of ``u`` are i.i.d. standard normal: the
        paper's goodness-of-fit diagnostic.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        U : ndarray of shape (n_samples, n_features)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> model.transform(X).shape
        (200, 2)
        """
        Z = self._standardized(X)
        return self._evaluate(self.module_.to_base, Z)

    def inverse_transform(self, X):
        """Map base variables back to data: ``x = f(u)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Base variables, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(200, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=5,
        ...                    random_state=0).fit(X)
        >>> np.allclose(model.inverse_transform(model.transform(X)), X)
        True
        """
        check_is_fitted(self)
        U = check_array(X, dtype=np.float64)
        if U.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {U.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        Z = self._evaluate(self.module_.from_base, torch.from_numpy(np.ascontiguousarray(U)))
        return Standardizer(self.shift_, self.scale_).inverse(Z)

    @property
    def _n_features_out(self):
        return self.n_features_in_

    # --------------------------------------------------------- persistence
    def __getstate__(self):
        # Copy first: on Python >= 3.11 BaseEstimator returns the live __dict__.
        state = dict(super().__getstate__())
        if "module_" in state:
            state["module_"] = module_to_bytes(state["module_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("module_"), bytes):
            state = dict(state)
            state["module_"], state["device_"] = module_from_bytes(
                state["module_"], state["device_"]
            )
        super().__setstate__(state)


# TransformerMixin wraps ``transform`` and ``fit_transform`` for ``set_output`` as the
# class is created, which would resolve an ``available_if`` descriptor into a plain
# function. Gating the wrapped methods afterwards keeps both: set_output works, and
# ``hasattr(estimator, "transform")`` is False for a model without a Gaussian base
# (so scikit-learn's checks and meta-estimators see no transformer there).
for _name in ("transform", "fit_transform", "inverse_transform", "get_feature_names_out"):
    setattr(BaseFlowDensity, _name,
            available_if(_has_gaussian_base)(getattr(BaseFlowDensity, _name)))


def _warn_about_degenerate_columns(X: np.ndarray) -> None:
    """Warn about columns on which a continuous density puts spikes.

    A constant column has no density at all; an integer-valued or heavily
    repeated one (at most half as many distinct values as rows) lets the model
    pile mass on the repeated values, so its log-likelihood grows with
    training instead of measuring fit (the MAF paper dequantizes such data).
    """
    constant = np.ptp(X, axis=0) == 0
    sorted_columns = np.sort(X, axis=0)
    n_distinct = 1 + np.count_nonzero(np.diff(sorted_columns, axis=0), axis=0)
    integer = np.all(X == np.round(X), axis=0)
    discrete = ~constant & (integer | (n_distinct <= X.shape[0] // 2))
    if constant.any():
        warnings.warn(
            f"Feature(s) {np.flatnonzero(constant).tolist()} are constant: the density is "
            "degenerate along them and its log-density there grows with training until the "
            "model's scale bound stops it. Drop constant columns, or add noise to them.",
            UserWarning,
            stacklevel=4,
        )
    if discrete.any():
        warnings.warn(
            f"Feature(s) {np.flatnonzero(discrete).tolist()} are integer-valued or take few "
            "distinct values: a continuous density puts spikes on those values, and the "
            "log-likelihood then rewards the spikes rather than the fit. Dequantize them, "
            "e.g. add uniform noise of one quantization step (X + rng.uniform(size=X.shape) "
            "for integer data).",
            UserWarning,
            stacklevel=4,
        )
