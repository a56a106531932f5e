"""What a training run is told, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainingOptions", "TrainingResult"]


@dataclass(frozen=True)
class TrainingOptions:
    """The estimator's training parameters, under the names the training code uses.

    ``l2_penalty`` is the estimator's ``alpha`` (scikit-learn's name for it):
    ``0.5 * l2_penalty * sum(W**2) / batch_size`` is added to each minibatch's
    loss, on the connection weights only.
    """

    max_iter: int
    batch_size: int
    learning_rate: float
    l2_penalty: float
    early_stopping: bool
    n_iter_no_change: int
    tol: float
    verbose: int = 0
    compile: bool = False
    ema_decay: float = 0.0


@dataclass
class TrainingResult:
    """What a training run did; the estimator copies it into its fitted attributes."""

    n_iter: int = 0
    best_iter: int = 0
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_validation_score: float | None = None
