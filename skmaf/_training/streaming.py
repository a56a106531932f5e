"""Streaming fits: one ``partial_fit`` call is one epoch of Adam steps over a chunk.

Follows ``MLPRegressor.partial_fit``: shuffled minibatches, no early stopping,
and the optimiser's state (Adam's moment estimates) carried from one call to
the next. Two things differ from ``fit``, because the whole data set is never
at hand:

- **Standardisation.** The mean and variance of every row seen so far are
  accumulated (:class:`~skmaf._preprocessing.RunningMoments`), and each chunk
  is standardised with the statistics that include it. The density is always
  the current statistics composed with the current flow, so ``score_samples``
  is exact at every moment; the flow adapts as the statistics settle.
- **Batch norm.** ``fit`` freezes each batch-norm layer on the whole training
  set (the paper's appendix B). Here every training minibatch moves the
  evaluation statistics towards its own, with momentum
  :data:`BATCH_NORM_MOMENTUM` (torch's ``BatchNorm`` convention); the first
  chunk seen by a new model sets them outright.

Training happens on a float32 copy of the model, which replaces the fitted
float64 model only if the epoch stays finite: a diverged call changes nothing.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from .. import _dequantization
from .._preprocessing import RunningMoments
from ..flows import Flow
from .loop import run_epoch
from .options import TrainingOptions
from .step import make_training_step

__all__ = ["BATCH_NORM_MOMENTUM", "StreamState", "train_on_chunk"]

#: Weight of each training minibatch in the running batch-norm statistics.
BATCH_NORM_MOMENTUM = 0.1


@dataclass(frozen=True)
class StreamState:
    """What ``partial_fit`` carries from one call to the next, besides the model.

    Immutable, and its tensors live on the CPU, so it pickles with the
    estimator on any device, and an estimator restored after a failed call
    holds exactly the state from before it.
    """

    #: Moments of every row seen; None until the model has seen data.
    moments: RunningMoments | None
    #: With the epoch number, seeds the minibatch order of each call.
    seed: int
    #: Adam's state by parameter name (``step.optimizer_state()``), on the CPU;
    #: None until the first ``partial_fit`` (``fit`` keeps no optimiser).
    optimizer_state: dict | None = None


@dataclass(frozen=True)
class ChunkResult:
    """What one ``partial_fit`` epoch produced; the estimator copies it into its attributes."""

    module: Flow
    state: StreamState
    loss: float  # mean training NLL of the epoch, nats per row in data units


def train_on_chunk(flow: Flow, state: StreamState, X: np.ndarray, options: TrainingOptions,
                   device: torch.device, epoch: int,
                   dequantized: np.ndarray | None = None) -> ChunkResult:
    """Run epoch number ``epoch`` (0-based) of minibatch Adam steps over the rows of ``X``,
    the ``dequantized`` columns with fresh unit noise in every minibatch.

    ``flow`` is left untouched; the result holds the trained float64 model in
    evaluation mode and the state for the next call.

    Raises ``FloatingPointError`` if the loss or a parameter becomes non-finite.
    """
    moments = RunningMoments.of(X) if state.moments is None else state.moments.updated(X)
    if not (np.isfinite(moments.mean).all() and np.isfinite(moments.var).all()):
        raise ValueError("This chunk's values are too large for float64 statistics: the "
                         "running variance overflows. Rescale the data before fitting.")
    standardizer = moments.standardizer()
    z = torch.from_numpy(standardizer.forward(X).astype(np.float32))
    noise_width = _dequantization.noise_width(dequantized, standardizer.scale)
    if noise_width is not None:
        noise_width = torch.from_numpy(noise_width.astype(np.float32))

    model = copy.deepcopy(flow).float().requires_grad_(True)
    if state.moments is None:
        model.freeze_statistics(z)
    # "auto" batch and step sizes are resolved for this chunk's rows.
    options = options.for_training_set(z.shape[0])
    batch_size = options.batch_size
    # The model's own forward pass, not the accelerator's hand-written one: the
    # running statistics come from the batch norm layers' forward hooks. No
    # Polyak averaging: a chunk's epoch keeps its last iterate, and the next
    # call goes on from it.
    step = make_training_step(model, replace(options, ema_decay=0.0), batch_size,
                              manual_backward=False)
    if state.optimizer_state is not None:
        # Only the moment estimates: learning_rate_init, alpha and batch_size
        # are read from the estimator on every call.
        step.load_optimizer_state(state.optimizer_state)

    rng = np.random.RandomState([state.seed, epoch])
    try:
        with _running_statistics(model, BATCH_NORM_MOMENTUM):
            loss = run_epoch(model, step, z, batch_size, rng, device,
                             noise_width=noise_width) - standardizer.log_det
        optimizer_state = step.optimizer_state()
    finally:
        step.close()
    if not (math.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())):
        raise FloatingPointError(
            f"partial_fit diverged: the log-likelihood became non-finite in epoch {epoch + 1}; "
            "the model was left as it was before this call. Try a smaller "
            "learning_rate_init, a larger batch_size or alpha, or check the chunk for "
            "extreme values."
        )
    model = model.double().eval().requires_grad_(False)
    # The conditioners' input ranges (the flow's tails, flows/ranges.py): the
    # union of every chunk's range, each under the parameters of its epoch.
    if noise_width is not None:
        z = z + torch.from_numpy(rng.uniform(size=tuple(z.shape)).astype(np.float32)) * noise_width
    model.widen_input_ranges(z.double())
    next_state = StreamState(
        moments=moments,
        seed=state.seed,
        optimizer_state=optimizer_state,
    )
    return ChunkResult(module=model, state=next_state, loss=loss)


@contextmanager
def _running_statistics(flow: Flow, momentum: float):
    """While active, each training forward pass moves every stateful layer's
    running evaluation statistics towards those of its minibatch input."""

    def update(transform, inputs, output):
        if transform.training:
            transform.update_running_statistics(inputs[0], momentum)

    handles = [t.register_forward_hook(update) for t in flow.transforms if t.has_statistics]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
