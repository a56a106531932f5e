"""What the conditional MAFs share: a MAF over targets whose every MADE sees a context.

The paper's section 4.4: a conditional MAF feeds the conditioning vector to
every hidden layer of every MADE, so the flow is a density ``p(target |
context)``. :class:`~skmaf.MAFRegressor` models ``p(y | x)`` (targets y, context
x); :class:`~skmaf.MAFClassifier` models ``p(x | class)`` (targets x, context
the one-hot class). Both take :class:`~skmaf.MAFDensity`'s architecture and
training parameters; this module builds, trains and evaluates their model.
"""

from __future__ import annotations

from abc import ABCMeta

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._flow_estimator import FlowEstimatorMixin
from ._runtime.chunks import SAMPLING_CHUNK_SIZE, SCORING_CHUNK_SIZE
from ._runtime.threads import torch_threads_within_budget
from .flows import Flow, build_maf
from .maf import MAFDensity

__all__ = ["BaseConditionalMAF"]


class BaseConditionalMAF(FlowEstimatorMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the conditional MAF estimators. Not for direct use."""

    _parameter_constraints: dict = {
        **FlowEstimatorMixin._parameter_constraints,
        **{name: MAFDensity._parameter_constraints[name]
           for name in MAFDensity._architecture_parameters},
    }
    _architecture_parameters = MAFDensity._architecture_parameters

    # Conditional models score in float64 through the reference model: every
    # row's value is then independent of its batch without the float32 copy's
    # padding rules, which know no context.
    _scores_with_the_accelerator = False

    def _build_flow(self, n_features: int, generator: torch.Generator,
                    architecture: dict, n_context_features: int = 0) -> Flow:
        return build_maf(n_features, n_context_features=n_context_features,
                         generator=generator, **architecture)

    def _conditional_log_prob(self, Z: np.ndarray, C: np.ndarray,
                              flow: Flow | None = None) -> np.ndarray:
        """``log p(z_i | c_i)`` of each row, in the model's (standardised) units."""
        flow = self.module_ if flow is None else flow
        n_targets = Z.shape[1]

        def log_prob(rows):
            return flow.log_prob(rows[:, :n_targets], rows[:, n_targets:])

        # Rows and their contexts side by side, so that one chunk carries both.
        return self._evaluate(log_prob, np.hstack([Z, C]), SCORING_CHUNK_SIZE)

    def _sample_targets(self, C: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """One draw of the (standardised) targets for each row of contexts ``C``."""
        flow = self._sampling_flow if self._sampling_flow is not None else self.module_
        draws = []
        with torch.no_grad(), torch_threads_within_budget():
            for start in range(0, len(C), SAMPLING_CHUNK_SIZE):
                chunk = np.ascontiguousarray(C[start:start + SAMPLING_CHUNK_SIZE],
                                             dtype=np.float64)
                context = torch.from_numpy(chunk).to(self.device_)
                draws.append(flow.sample(len(chunk), rng, context=context).cpu().numpy())
        return np.concatenate(draws)
