"""The estimator layer shared by every skmaf density: fit, score, sample, map, persist.

A subclass supplies its parameters, their constraints and ``_build_flow``; it
never touches validation, preprocessing, training or devices. This module
knows the :class:`~skmaf.flows.Flow` protocol and no concrete transform.
"""

from __future__ import annotations

import math
import warnings
from abc import ABCMeta

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _dequantization
from ._accelerated.scoring import ROW_MULTIPLE
from ._flow_estimator import FlowEstimatorMixin, draw_seed, unchanged_on_error, validate_draw
from ._preprocessing import RunningMoments, Standardizer
from ._runtime.chunks import (
    SAMPLING_CHUNK_SIZE,
    SCORING_CHUNK_SIZE,
)
from ._runtime.device import resolve_device
from ._runtime.threads import torch_threads_within_budget
from ._training import StreamState, train_on_chunk
from .exceptions import DegenerateDataWarning
from .flows import count_connections

__all__ = ["BaseFlowDensity"]


class BaseFlowDensity(
    FlowEstimatorMixin, ClassNamePrefixFeaturesOutMixin, DensityMixin, TransformerMixin,
    BaseEstimator, metaclass=ABCMeta,
):
    """Base class of the skmaf density estimators. Not for direct use."""

    _parameter_constraints: dict = {
        **FlowEstimatorMixin._parameter_constraints,
        "dequantize": [StrOptions({"auto"}), "array-like", None],
    }

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
        with unchanged_on_error(self), torch_threads_within_budget():
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
            X = X.astype(np.float64, copy=False)
            dequantized = _dequantization.resolve_dequantized(
                self.dequantize, X, getattr(self, "feature_names_in_", None))
            device = resolve_device(self.device)
            rng = check_random_state(self.random_state)
            flow = self._new_flow(X.shape[1], rng)

            moments = RunningMoments.of(X)
            standardizer = moments.standardizer()
            _check_columns(X, moments, standardizer, dequantized)
            self._train_and_freeze(
                flow, standardizer.forward(X), rng, device, log_det_offset=standardizer.log_det,
                noise_width=_dequantization.noise_width(dequantized, standardizer.scale))
            self.dequantized_features_ = dequantized
            self.shift_ = standardizer.shift
            self.scale_ = standardizer.scale
            self.n_samples_seen_ = moments.n_samples
            # What a partial_fit after this fit continues from.
            self._stream = StreamState(moments=moments, seed=draw_seed(rng))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the model with one epoch of minibatch Adam steps over the chunk ``X``.

        For data that arrive in chunks, or do not fit in memory at once
        (scikit-learn's incremental-learning convention, as in
        ``MLPRegressor.partial_fit``). The first call builds the model for
        ``X``'s number of features; later chunks must have as many. A ``fit``
        afterwards starts over; a ``partial_fit`` after ``fit`` continues from
        the fitted model.

        How this differs from :meth:`fit`:

        - no early stopping: each call runs exactly one pass over its chunk, so
          ``max_iter``, ``early_stopping``, ``validation_fraction``,
          ``n_iter_no_change`` and ``tol`` are not used. Call it again, on the
          same chunks, for more epochs;
        - no Polyak averaging (``ema_decay`` is not used): the model is the last
          iterate;
        - the internal standardisation uses the mean and variance of all rows
          seen so far (``shift_``, ``scale_``, updated at every call), and
          :meth:`score_samples` stays the exact log-density in the data's units;
        - batch norm evaluates with running averages of the minibatch
          statistics (momentum 0.1, as torch's ``BatchNorm``) instead of the
          whole-training-set statistics that ``fit`` computes (the paper's
          appendix B);
        - ``dequantize`` is resolved on the first chunk; a later chunk with
          non-integer values in a dequantized column raises ``ValueError``;
        - Adam's state is kept between calls, and pickled with the estimator,
          so a pickled model continues where it stopped. ``learning_rate_init``,
          ``alpha`` and ``batch_size`` are read at every call; the architecture,
          ``device`` and ``random_state`` at the first.

        A chunk whose training diverges raises ``FloatingPointError`` and, like
        invalid input, leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data; at least two rows, all finite.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from skmaf import MAFDensity
        >>> X = np.random.RandomState(0).normal(size=(300, 2))
        >>> model = MAFDensity(n_transforms=2, n_hidden_units=8, random_state=0)
        >>> for chunk in np.array_split(X, 3):
        ...     model = model.partial_fit(chunk)
        >>> model.n_samples_seen_, model.n_iter_
        (300, 3)
        """
        first_call = not hasattr(self, "module_")
        with unchanged_on_error(self), torch_threads_within_budget():
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                              reset=first_call)
            X = X.astype(np.float64, copy=False)
            if first_call:
                moments = RunningMoments.of(X)
                self.dequantized_features_ = _dequantization.resolve_dequantized(
                    self.dequantize, X, getattr(self, "feature_names_in_", None))
                _check_columns(X, moments, moments.standardizer(), self.dequantized_features_)
                rng = check_random_state(self.random_state)
                self.device_ = resolve_device(self.device)
                self.module_ = self._new_flow(X.shape[1], rng).to(self.device_)
                self.n_parameters_ = count_connections(self.module_)
                self._stream = StreamState(moments=None, seed=draw_seed(rng))
                self.n_iter_, self.loss_curve_ = 0, []
            else:
                _dequantization.check_still_integer(X, self._dequantized_features())
            result = train_on_chunk(self.module_, self._stream, X, self._training_options(),
                                    self.device_, epoch=self.n_iter_,
                                    dequantized=self._dequantized_features())
            standardizer = result.state.moments.standardizer()
            if not first_call:
                _warn_about_a_moved_standardisation(self.scale_, self.shift_, standardizer)
            self._set_module(result.module)
            self._stream = result.state
            self.shift_ = standardizer.shift
            self.scale_ = standardizer.scale
            self.n_samples_seen_ = result.state.moments.n_samples
            self.n_iter_ += 1
            self.best_iter_ = self.n_iter_  # the last state is kept
            # A new list, not append: unchanged_on_error restores references only.
            self.loss_curve_ = [*self.loss_curve_, result.loss]
            self.validation_scores_ = None
            self.best_validation_score_ = None
        return self

    # ---------------------------------------------------------- evaluation
    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

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
            Finite for rows within about 1e20 standard deviations of the
            training data; farther out, where it is below about -1e40, the
            float32 networks may overflow and the value is ``-inf``.

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
        X = self._validated(X)  # checks fitted-ness before module_ is touched
        shift, scale = self._standardization()
        log_det = Standardizer(self.shift_, self.scale_).log_det
        # The accelerator's float32 copy where there is one: chunks of a multiple
        # of its row_multiple rows keep every row's score independent of the
        # batch it comes in. Else the reference model, in float64. Either way the
        # base density and the sums are float64.
        flow, dtype, row_multiple = self.module_, torch.float64, 1
        if self._scoring_flow is not None:
            flow, dtype = self._scoring_flow, torch.float32
            row_multiple = ROW_MULTIPLE

        def log_density(x):
            u, log_det_flow = flow(((x - shift) / scale).to(dtype))
            log_prob = flow.base.log_prob(u.double()) + log_det_flow.double()
            # The model's log-determinant is bounded (clamped log-scales, frozen batch
            # norm), so a non-finite value can only come from a row so distant that
            # the networks overflow: -inf stands for its (vanishing) density.
            return torch.nan_to_num(log_prob, nan=-math.inf, posinf=-math.inf,
                                    neginf=-math.inf) + log_det

        def evaluate(rows):
            return self._evaluate(log_density, rows, SCORING_CHUNK_SIZE, row_multiple)

        columns = self._dequantized_features()
        if not len(columns):
            return evaluate(X)
        # Dequantized columns: the log-probability of each row's unit cell.
        return _dequantization.cell_log_probability(evaluate, X, columns)

    def _dequantized_features(self) -> np.ndarray:
        # Models pickled before dequantization existed have none.
        return getattr(self, "dequantized_features_", np.empty(0, dtype=np.int64))

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
            Integers in the dequantized columns (``dequantized_features_``):
            the cell ``[x, x + 1)`` a continuous draw falls in.

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
        validate_draw(n_samples, random_state, "sample")
        rng = check_random_state(random_state)
        flow = self._sampling_flow if self._sampling_flow is not None else self.module_
        shift, scale = self._standardization()
        samples = np.empty((n_samples, self.n_features_in_))
        with torch.no_grad(), torch_threads_within_budget():
            for start in range(0, n_samples, SAMPLING_CHUNK_SIZE):
                rows = slice(start, min(start + SAMPLING_CHUNK_SIZE, n_samples))
                z = flow.sample(rows.stop - rows.start, rng)
                samples[rows] = (z * scale + shift).cpu().numpy()
        columns = self._dequantized_features()
        samples[:, columns] = np.floor(samples[:, columns])
        return samples

    def transform(self, X):
        """Map data one-to-one to standard normal variables.

        With a standard normal base (``tail_weight=0``) these are the flow's
        base variables ``u = f^-1(x)``. With the defensive base (the MAF and
        Real NVP defaults) and a mixture base (MAF MoG, MADE MoG) the base
        variables are mapped on by the Rosenblatt transform, each coordinate
        through its conditional CDF given those before it and then the
        standard normal quantile (for the defensive base, close to the
        identity for rows its narrow component explains). Either way, when
        the model fits, the rows are i.i.d. standard normal: the paper's
        goodness-of-fit diagnostic. In the dequantized columns
        (``dequantized_features_``) an integer ``x`` stands for its cell, and
        the centre of the cell, ``x + 1/2``, is mapped.

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
        X = self._validated(X).astype(np.float64)
        X[:, self._dequantized_features()] += 0.5
        shift, scale = self._standardization()
        flow = self.module_
        return self._evaluate(
            lambda x: flow.base.to_standard_normal(flow.to_base((x - shift) / scale)), X)

    def inverse_transform(self, X):
        """Map standard normal variables back to data: the inverse of :meth:`transform`.

        With a mixture or defensive base each coordinate of the base is found
        in turn, by bisection of its conditional CDF (for a MADE MoG, D passes
        of its MADE). That is exact wherever the model puts density; where a
        conditional density is too small for float64 to move its CDF (between
        far-apart narrow components) the CDF is flat, and a point of the flat
        stretch is returned.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Standard normal variables, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            The exact inverse of :meth:`transform`: in the dequantized columns,
            the flow's value minus 1/2 (round it for the integer of the cell).

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
        U = check_array(X, dtype=[np.float64, np.float32])
        if U.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {U.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        shift, scale = self._standardization()
        flow = self._sampling_flow if self._sampling_flow is not None else self.module_
        base = self.module_.base
        X = self._evaluate(lambda z: flow.from_base(base.from_standard_normal(z)) * scale + shift,
                           U, SAMPLING_CHUNK_SIZE)
        X[:, self._dequantized_features()] -= 0.5
        return X

    @property
    def _n_features_out(self):
        return self.n_features_in_


#: A column whose standard deviation is below this fraction of its magnitude is
#: quantized by float64 rounding itself.
_ROUNDING_QUANTIZED_BELOW = 1e-8


#: A chunk that changes a column's running scale by more than this factor, or its
#: mean by more than this many former scales, changes what the model sees.
_MOVED_STANDARDISATION = 10.0


def _warn_about_a_moved_standardisation(scale, shift, standardizer) -> None:
    """Warn when one partial_fit chunk moved the running standardisation a lot."""
    factor = np.maximum(standardizer.scale / scale, scale / standardizer.scale)
    moved = (factor > _MOVED_STANDARDISATION) | (
        np.abs(standardizer.shift - shift) > _MOVED_STANDARDISATION * scale)
    if moved.any():
        warnings.warn(
            f"This chunk moved the running standardisation of feature(s) "
            f"{np.flatnonzero(moved).tolist()} by more than a factor of "
            f"{_MOVED_STANDARDISATION:g} (extreme values in it?): the rows seen before now "
            "reach the model at another scale, and their log-densities change until it "
            "has learned again. Remove outliers from the chunks, or start over with fit.",
            DegenerateDataWarning,
            stacklevel=4,
        )


def _check_columns(X: np.ndarray, moments: RunningMoments, standardizer,
                   dequantized: np.ndarray) -> None:
    """Raise for columns whose statistics overflow; warn about columns on which a
    continuous density is degenerate, with the remedy that fits each case.

    - a constant column, or one constant to float64 rounding, has no density;
    - an integer-valued column that is not dequantized, or a heavily repeated
      one (at most half as many distinct values as rows), lets the model pile
      mass on the repeated values, so its log-likelihood grows with training
      instead of measuring fit; not said of columns beyond 2**52, where every
      float64 is an integer, nor of columns that float64 rounding itself
      quantizes (a tiny spread around a huge mean), where the remedy differs;
    - linearly dependent columns put the data on a subspace, where the density
      is a spike.

    The ``dequantized`` columns are continuous to the model: none of this is
    said of them.
    """
    overflowing = ~np.isfinite(moments.mean) | ~np.isfinite(moments.var)
    if overflowing.any():
        raise ValueError(
            f"Feature(s) {np.flatnonzero(overflowing).tolist()} are too large for float64 "
            f"statistics: their variance overflows (largest magnitude "
            f"{np.abs(X[:, overflowing]).max():.3g}). Rescale them before fitting, e.g. "
            "divide by a power of ten; log-densities then shift by the log of that factor."
        )
    continuous = np.ones(X.shape[1], dtype=bool)
    continuous[dequantized] = False
    exactly_constant = (np.ptp(X, axis=0) == 0) & continuous
    rounding_constant = standardizer.constant & ~exactly_constant & continuous
    spread = np.sqrt(moments.var)
    rounding_quantized = (~standardizer.constant
                          & (spread < _ROUNDING_QUANTIZED_BELOW * np.abs(moments.mean)))
    sorted_columns = np.sort(X, axis=0)
    n_distinct = 1 + np.count_nonzero(np.diff(sorted_columns, axis=0), axis=0)
    varying = ~standardizer.constant & ~rounding_quantized & continuous
    integer = varying & _dequantization.integer_valued(X)
    repeated = varying & ~integer & (n_distinct <= X.shape[0] // 2)
    warnings_to_give = [
        (exactly_constant, "are constant: the density is degenerate along them and its "
         "log-density there grows with training until the model's scale bound stops it. "
         "Drop constant columns, or add noise to them."),
        (rounding_constant, "vary by less than float64 rounding of their mean, and are "
         "treated as constant. Subtract a reference value (e.g. their median) before "
         "fitting, so that their variation is representable."),
        (rounding_quantized, "vary by less than 1e-8 of their magnitude, so float64 rounding "
         "quantizes their values. Subtract a reference value (e.g. their median) before "
         "fitting."),
        (integer, "are integer-valued but not dequantized: a continuous density puts "
         "spikes on the integers, and the log-likelihood then rewards the spikes rather "
         "than the fit. Leave dequantize='auto' (the default), or name them in it."),
        (repeated, "take few distinct values: a continuous density puts spikes on those "
         "values, and the log-likelihood then rewards the spikes rather than the fit. If "
         "they are quantized with a step s, divide them by s and name them in dequantize "
         "(their log-densities then shift by log s); else add noise to them."),
    ]
    for columns, message in warnings_to_give:
        if columns.any():
            warnings.warn(f"Feature(s) {np.flatnonzero(columns).tolist()} {message}",
                          DegenerateDataWarning, stacklevel=4)
    # Columns quantized by float64 rounding are said to be so above; a few ulps of
    # spread would make the rank test below meaningless.
    _warn_about_linear_dependence(X, ~standardizer.constant & ~rounding_quantized)


def _warn_about_linear_dependence(X: np.ndarray, varying: np.ndarray) -> None:
    """Warn when the varying columns are (to float64 precision) linearly dependent."""
    Z = X[:, varying]
    Z = Z - Z.mean(axis=0)
    spread = Z.std(axis=0)
    Z = Z[:, spread > 0] / spread[spread > 0]
    if Z.shape[1] < 2 or Z.shape[0] <= Z.shape[1]:
        return
    singular_values = np.linalg.svd(Z / np.sqrt(len(Z)), compute_uv=False)
    rank = int(np.sum(singular_values > 1e-7 * singular_values[0]))
    if rank < len(singular_values):
        warnings.warn(
            f"The columns are linearly dependent: the data lie on a subspace of dimension "
            f"{rank} of {len(singular_values)} (e.g. one column is a linear function of "
            "others), where a density is a spike. Drop the redundant columns.",
            DegenerateDataWarning,
            stacklevel=4,
        )
