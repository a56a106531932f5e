"""What every skmaf estimator holding a fitted flow shares: building the model from
its architecture, training it, evaluating it in chunks, and pickling it.

The density estimators (:mod:`._base`) and the conditional ones
(:mod:`._conditional`) differ in what they fit and what they answer; the
model's life cycle is this one.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

from . import _accelerated, _persistence
from ._runtime.chunks import CHUNK_SIZE, evaluate_in_chunks
from ._runtime.device import device_for_loading
from ._runtime.threads import evaluation_workers, torch_threads_within_budget
from ._training import TrainingOptions, train_flow
from .flows import Flow, count_connections

__all__ = ["FlowEstimatorMixin", "draw_seed", "unchanged_on_error", "validate_draw"]

#: Parameters added after estimators were first pickled, with the value that
#: behaves as the estimator did before them.
PARAMETERS_BEFORE_THEY_EXISTED = {"ema_decay": 0.0, "dequantize": None,
                                  "learning_rate": "constant", "tail_weight": 0.0}


@contextmanager
def unchanged_on_error(estimator):
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


def draw_seed(rng: np.random.RandomState) -> int:
    return int(rng.randint(2**31 - 1))


def validate_draw(n_samples, random_state, caller_name: str) -> None:
    """scikit-learn's error for an ``n_samples`` that is not a count of at least 1
    (a bool included: an Integral to Python, not a count) or a bad ``random_state``."""
    if isinstance(n_samples, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The 'n_samples' parameter of {caller_name} must be an int in the range "
            f"[1, inf). Got {n_samples!r} instead.")
    validate_parameter_constraints(
        {"n_samples": [Interval(Integral, 1, None, closed="left")],
         "random_state": ["random_state"]},
        {"n_samples": n_samples, "random_state": random_state}, caller_name=caller_name)


def _context_argument(n_context_features: int) -> dict:
    """``_build_flow``'s context width, passed only when there is one: an
    unconditional estimator's ``_build_flow`` (a user's subclass too) may take
    just ``(n_features, generator, architecture)``."""
    return {"n_context_features": n_context_features} if n_context_features else {}


class FlowEstimatorMixin:
    """The fitted flow's life cycle, for estimators that hold one in ``module_``."""

    _parameter_constraints: dict = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "compile": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: The constructor parameters that define the model's architecture: what
    #: ``_build_flow`` receives, and what a pickle rebuilds the model from.
    _architecture_parameters: tuple = ()

    #: Whether ``score_samples`` may use the accelerator's float32 scoring copy.
    _scores_with_the_accelerator = True

    @abstractmethod
    def _build_flow(self, n_features: int, generator: torch.Generator,
                    architecture: dict, n_context_features: int = 0) -> Flow:
        """Build the untrained float32 model for ``n_features`` inputs (conditioned
        on ``n_context_features`` more, when positive).

        ``architecture`` holds the values of ``_architecture_parameters``.
        Raises ``ValueError`` for parameters that do not fit the data (e.g. an
        input order of the wrong length). All randomness comes from ``generator``.
        """

    def _new_flow(self, n_features: int, rng: np.random.RandomState,
                  n_context_features: int = 0) -> Flow:
        """The untrained float32 model, initialised from a seed drawn from ``rng``.

        Records what built it (``_fitted_architecture``), from which a pickle
        rebuilds it whatever ``set_params`` did since.
        """
        seed = draw_seed(rng)
        architecture = self._architecture()
        flow = self._build_flow(n_features, torch.Generator().manual_seed(seed), architecture,
                                **_context_argument(n_context_features))
        self._fitted_architecture = {"n_features": n_features, "seed": seed,
                                     "parameters": architecture,
                                     "n_context_features": n_context_features}
        return flow

    def _architecture(self) -> dict:
        """The values of ``_architecture_parameters``: what ``_build_flow`` builds from."""
        return {name: getattr(self, name) for name in self._architecture_parameters}

    def _rebuilt_flow(self, saved: dict, device: torch.device) -> Flow:
        """The fitted model from :func:`~skmaf._persistence.saved_state`'s arrays."""
        built = self._fitted_architecture
        flow = self._build_flow(built["n_features"], torch.Generator().manual_seed(built["seed"]),
                                built["parameters"],
                                **_context_argument(built.get("n_context_features", 0))).double()
        _persistence.load_state(flow, saved)
        return flow.to(device).eval().requires_grad_(False)

    def _training_options(self) -> TrainingOptions:
        return TrainingOptions(
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate_init,
            schedule=self.learning_rate,
            l2_penalty=self.alpha,
            ema_decay=self.ema_decay,
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=self.verbose,
            compile=self.compile,
        )

    def _train_and_freeze(self, flow: Flow, Z: np.ndarray, rng: np.random.RandomState,
                          device: torch.device, log_det_offset: float,
                          context: np.ndarray | None = None,
                          noise_width: np.ndarray | None = None) -> Flow:
        """Train ``flow`` on the standardised rows ``Z`` (with their ``context``),
        early-stopping on a split of them; keep it in float64, its batch norm and
        input ranges frozen on the training part, and record the training.

        ``noise_width`` dequantizes: the training rows get fresh uniform noise of
        that width per column in every minibatch; the validation rows and the rows
        the statistics are frozen on one fixed draw.
        """
        parts = [Z] if context is None else [Z, context]
        train, val = parts, [None] * len(parts)
        if self.early_stopping:
            split = train_test_split(*parts, test_size=self.validation_fraction,
                                     random_state=rng)
            train, val = split[0::2], split[1::2]
        Z_train, Z_val = train[0], val[0]
        if noise_width is not None and Z_val is not None:
            Z_val = Z_val + rng.uniform(size=Z_val.shape) * noise_width
        as_float32 = (lambda a: None if a is None  # noqa: E731
                      else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        result = train_flow(
            flow.to(device), as_float32(Z_train), as_float32(Z_val),
            self._training_options(), rng, device, log_det_offset=log_det_offset,
            context_train=None if context is None else as_float32(train[1]),
            context_val=None if context is None else as_float32(val[1]),
            noise_width=None if noise_width is None else as_float32(noise_width),
        )
        # Trained in float32; kept in float64, so that transform and
        # inverse_transform round-trip to 1e-10 (score_samples may use the
        # accelerator's float32 copy, see _set_module). Batch norm and the
        # conditioners' input ranges are frozen on the whole training part,
        # as in the paper's appendix B.
        flow = flow.double()
        if noise_width is not None:
            Z_train = Z_train + rng.uniform(size=Z_train.shape) * noise_width
        flow.freeze_statistics(torch.from_numpy(Z_train),
                               None if context is None else torch.from_numpy(train[1]),
                               chunk_size=CHUNK_SIZE)
        flow.requires_grad_(False)
        self._set_module(flow)
        self.device_ = device
        self.n_parameters_ = count_connections(flow)
        self.n_iter_ = result.n_iter
        self.best_iter_ = result.best_iter
        self.loss_curve_ = result.loss_curve
        self.validation_scores_ = result.validation_scores
        self.best_validation_score_ = result.best_validation_score
        return flow

    def _set_module(self, flow: Flow) -> None:
        """Keep the fitted model, and what the accelerator derives from it, together."""
        self.module_ = flow
        self._scoring_flow = (_accelerated.scoring_flow(flow)
                              if self._scores_with_the_accelerator else None)
        self._sampling_flow = _accelerated.sampling_flow(flow)

    def _standardization(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``shift_`` and ``scale_`` on the model's device, to standardise chunk by chunk."""
        return (torch.tensor(self.shift_, device=self.device_),
                torch.tensor(self.scale_, device=self.device_))

    def _evaluate(self, function, X: np.ndarray, chunk_size: int = CHUNK_SIZE,
                  row_multiple: int = 1) -> np.ndarray:
        """``function`` applied to float64 chunks of ``X``: memory beyond input and
        output stays that of a few chunks, whatever the number of rows; on the CPU
        the chunks are shared among the threads the budget allows
        (:func:`~skmaf._runtime.threads.worker_budget`)."""
        with torch_threads_within_budget():
            return evaluate_in_chunks(function, X, self.device_, torch.float64,
                                      chunk_size, row_multiple,
                                      n_workers=evaluation_workers()).numpy()

    # --------------------------------------------------------- persistence
    def __getstate__(self):
        # Copy first: on Python >= 3.11 BaseEstimator returns the live __dict__.
        state = dict(super().__getstate__())
        if "module_" in state:
            state["module_"] = _persistence.saved_state(state["module_"])
            # Derived from module_, rebuilt on loading.
            state.pop("_scoring_flow", None)
            state.pop("_sampling_flow", None)
        return state

    def __setstate__(self, state):
        module = state.get("module_")
        if isinstance(module, bytes):  # pickled by skmaf 0.1.0: a whole torch module
            saved_format = state.pop("_model_format", 1)
            if saved_format != _persistence.LEGACY_FORMAT:
                raise ValueError(
                    f"This {type(self).__name__} was saved by a skmaf whose fitted models "
                    f"have layout {saved_format}, which this skmaf cannot read (it reads "
                    f"layouts {_persistence.LEGACY_FORMAT} and {_persistence.FORMAT}). Fit "
                    "the model again with this version."
                )
            state["module_"] = _persistence.state_of_legacy_blob(module)
        elif isinstance(module, dict) and module.get("format") != _persistence.FORMAT:
            raise ValueError(
                f"This {type(self).__name__} was saved by a newer skmaf (model layout "
                f"{module.get('format')}); this one reads layouts up to "
                f"{_persistence.FORMAT}. Upgrade skmaf to load it."
            )
        # A pickle made before a parameter existed gets the value that trains as
        # it was trained (the fitted model itself is the same kind: no new layout).
        defaults = {name: value for name, value in PARAMETERS_BEFORE_THEY_EXISTED.items()
                    if name in self._get_param_names()}
        super().__setstate__({**defaults, **state})
        if isinstance(module, (bytes, dict)):
            if not hasattr(self, "_fitted_architecture"):  # 0.1.0: built from the parameters
                self._fitted_architecture = {"n_features": self.n_features_in_, "seed": 0,
                                             "parameters": self._architecture()}
            self.device_ = device_for_loading(self.device_)
            self._set_module(self._rebuilt_flow(self.module_, self.device_))
