"""What a training run is told, and what it reports back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = ["TrainingOptions", "TrainingResult", "resolve_batch_size", "resolve_learning_rate"]

#: ``batch_size="auto"``: about this many minibatches an epoch, within
#: ``AUTO_BATCH_SIZE_RANGE`` rows each. Larger sets take larger batches: a step
#: costs little more at 500 rows than at 100 (its time goes to per-layer overheads,
#: not to arithmetic), and the larger sets gain from the less noisy gradient.
AUTO_BATCHES_PER_EPOCH = 40
AUTO_BATCH_SIZE_RANGE = (100, 500)

#: ``learning_rate_init="auto"``: Adam's step size for a minibatch of
#: ``AUTO_REFERENCE_BATCH`` rows, scaled by the square root of the batch size, the
#: scaling rule that keeps Adam's trajectory (Malladi et al., "On the SDEs and
#: scaling rules for adaptive gradient algorithms", NeurIPS 2022).
AUTO_LEARNING_RATE = 2e-3
AUTO_REFERENCE_BATCH = 100

#: ``learning_rate="adaptive"``: at each plateau the step size is multiplied by
#: this, at most ``N_LEARNING_RATE_DECAYS`` times; the plateau after that stops.
LEARNING_RATE_DECAY = 0.1
N_LEARNING_RATE_DECAYS = 2


def resolve_batch_size(batch_size: int | str, n_train: int) -> int:
    """The minibatch size for ``n_train`` training rows: ``batch_size``, or the
    ``"auto"`` rule; never more than ``n_train``."""
    if batch_size == "auto":
        low, high = AUTO_BATCH_SIZE_RANGE
        batch_size = min(max(low, n_train // AUTO_BATCHES_PER_EPOCH), high)
    return max(min(batch_size, n_train), 1)


def resolve_learning_rate(learning_rate: float | str, batch_size: int) -> float:
    """Adam's initial step size: ``learning_rate``, or the ``"auto"`` rule for ``batch_size``."""
    if learning_rate == "auto":
        return AUTO_LEARNING_RATE * math.sqrt(batch_size / AUTO_REFERENCE_BATCH)
    return float(learning_rate)


@dataclass(frozen=True)
class TrainingOptions:
    """The estimator's training parameters, under the names the training code uses.

    ``l2_penalty`` is the estimator's ``alpha`` (scikit-learn's name for it):
    ``0.5 * l2_penalty * sum(W**2) / batch_size`` is added to each minibatch's
    loss, on the connection weights only. ``batch_size`` and ``learning_rate``
    may be ``"auto"`` until :meth:`for_training_set` resolves them.
    ``schedule`` is the estimator's ``learning_rate``: ``"constant"`` or
    ``"adaptive"`` (see :func:`~skmaf._training.loop.train_flow`).
    """

    max_iter: int
    batch_size: int | str
    learning_rate: float | str
    l2_penalty: float
    early_stopping: bool
    n_iter_no_change: int
    tol: float
    verbose: int = 0
    compile: bool = False
    ema_decay: float = 0.0
    schedule: str = "constant"

    def for_training_set(self, n_train: int) -> TrainingOptions:
        """These options with the batch size and step size for ``n_train`` rows."""
        batch_size = resolve_batch_size(self.batch_size, n_train)
        return replace(self, batch_size=batch_size,
                       learning_rate=resolve_learning_rate(self.learning_rate, batch_size))


@dataclass
class TrainingResult:
    """What a training run did; the estimator copies it into its fitted attributes."""

    n_iter: int = 0
    best_iter: int = 0
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_validation_score: float | None = None
