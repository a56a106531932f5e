"""Maximum-likelihood training with Adam and early stopping: the only training loop in skmaf.

The loop follows scikit-learn's ``MLPRegressor._fit_stochastic``: shuffle each
epoch, minibatches, L2 penalty, and a plateau when the monitored quantity has
not improved by more than ``tol`` for ``n_iter_no_change`` epochs. With a
constant step size the first plateau stops training; with the adaptive
schedule the first plateaus divide the step size instead
(:data:`~.options.LEARNING_RATE_DECAY`, :data:`~.options.N_LEARNING_RATE_DECAYS`
times) and restart from the best weights so far, and the next one stops. A large
step finds the region of a good model fast, and its smaller successors settle
into it without the noise of the large one, which a constant small step would
take many more epochs to reach. With early stopping the monitored quantity is
the validation log-likelihood and the best epoch's weights are restored at the
end; without it, the training loss, and the last weights are kept. With
``ema_decay`` the weights validated and kept are the moving average of the
iterates (:mod:`.averaging`).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from .._runtime.chunks import evaluate_in_chunks
from .._runtime.progress import make_reporter
from .options import LEARNING_RATE_DECAY, N_LEARNING_RATE_DECAYS, TrainingOptions, TrainingResult
from .step import make_training_step

__all__ = ["run_epoch", "train_flow"]


def run_epoch(model, step, z_train: torch.Tensor, batch_size: int, rng, device,
              context_train: torch.Tensor | None = None,
              noise_width: torch.Tensor | None = None) -> float:
    """One pass of ``step`` over shuffled minibatches; returns the mean training NLL
    (model units). With ``context_train``, each row is trained on as the density
    of ``z_train``'s row given that row of the context. With ``noise_width``
    (one entry per feature), every minibatch gets fresh uniform noise
    ``U[0, width)`` added: dequantization (:mod:`skmaf._dequantization`)."""
    model.train()
    n_train = z_train.shape[0]
    # Near-equal batches (sizes differ by at most one) instead of a ragged last
    # batch: batch norm on a one- or two-row batch is meaningless.
    n_batches = max(n_train // batch_size, 1)
    total = torch.zeros((), device=device)
    for index in np.array_split(rng.permutation(n_train), n_batches):
        rows = torch.from_numpy(index)
        batch = z_train[rows]
        if noise_width is not None:
            noise = torch.from_numpy(rng.uniform(size=tuple(batch.shape)).astype(np.float32))
            batch = batch + noise.to(batch.dtype) * noise_width
        batch = batch.to(device, non_blocking=True)
        if context_train is None:
            total += step(batch) * len(index)
        else:
            total += step(batch, context_train[rows].to(device, non_blocking=True)) * len(index)
    return total.item() / n_train


def validation_score(model, z_train: torch.Tensor, z_val: torch.Tensor, device,
                     context_train: torch.Tensor | None = None,
                     context_val: torch.Tensor | None = None) -> float:
    """Mean validation log-likelihood with batch norm frozen on the training set."""
    model.freeze_statistics(z_train, context_train)
    if context_val is None:
        log_prob = evaluate_in_chunks(model.log_prob, z_val, device, z_train.dtype)
    else:
        # Rows and their contexts side by side, so that one chunk carries both.
        n_features = z_val.shape[1]
        log_prob = evaluate_in_chunks(
            lambda rows: model.log_prob(rows[:, :n_features], rows[:, n_features:]),
            torch.cat([z_val, context_val.to(z_val.dtype)], dim=1), device, z_train.dtype)
    return log_prob.double().mean().item()


class _Monitor:
    """Early stopping's bookkeeping: the best score, the epochs without improvement,
    and the state to restore (the best epoch's, or with ``early_stopping=False``
    the last good one's)."""

    def __init__(self, options: TrainingOptions):
        self.options = options
        self.result = TrainingResult(validation_scores=[] if options.early_stopping else None)
        self.best = -math.inf
        self.best_state = None
        self.no_improvement = 0

    def record(self, epoch: int, train_nll: float, score: float, model) -> None:
        self.result.n_iter = epoch
        self.result.loss_curve.append(train_nll)
        if self.options.early_stopping:
            self.result.validation_scores.append(score)
        improved_by_tol = score > self.best + self.options.tol
        self.no_improvement = 0 if improved_by_tol else self.no_improvement + 1
        if score > self.best or not self.options.early_stopping:
            self.best_state = {name: value.detach().clone()
                               for name, value in model.state_dict().items()}
            self.result.best_iter = epoch
        self.best = max(score, self.best)

    def on_plateau(self) -> bool:
        return self.no_improvement >= self.options.n_iter_no_change

    def restart_from_best(self, model) -> None:
        """Load the best state into ``model`` and count the patience afresh."""
        model.load_state_dict(self.best_state)
        self.no_improvement = 0

    def finish(self, model) -> TrainingResult:
        """Restore the kept state into ``model``; return the result."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        if self.options.early_stopping and self.result.best_iter:
            self.result.best_validation_score = (
                self.result.validation_scores[self.result.best_iter - 1])
        return self.result


def train_flow(model, z_train: torch.Tensor, z_val: torch.Tensor | None,
               options: TrainingOptions, rng: np.random.RandomState, device: torch.device,
               log_det_offset: float = 0.0, context_train: torch.Tensor | None = None,
               context_val: torch.Tensor | None = None,
               noise_width: torch.Tensor | None = None) -> TrainingResult:
    """Fit ``model`` by maximum likelihood on ``z_train``; early-stop on ``z_val``.

    ``options`` may leave the batch size and step size ``"auto"``: they are
    resolved for ``z_train``'s rows (:meth:`TrainingOptions.for_training_set`).

    ``log_det_offset`` is the preprocessing's log-Jacobian: the reported losses
    and scores are per-sample log-likelihoods in the user's units. A conditional
    model (built with ``n_context_features``) gets the rows' contexts,
    ``context_train`` and ``context_val``, and learns ``p(z | context)``.
    ``noise_width`` dequantizes the training rows afresh in every minibatch
    (:func:`run_epoch`); ``z_val`` comes already dequantized.

    Raises ``FloatingPointError`` if the very first epoch is not finite. A
    later non-finite epoch restores the last good state with a warning.
    A ``KeyboardInterrupt`` after the first epoch keeps the best state, with a
    warning; before it, it propagates.
    """
    options = options.for_training_set(z_train.shape[0])
    batch_size = options.batch_size
    # What validation freezes batch norm and the input ranges on: the training
    # rows, dequantized by one fixed draw where they are dequantized at all.
    z_frozen = z_train
    if noise_width is not None:
        noise = torch.from_numpy(rng.uniform(size=tuple(z_train.shape)).astype(np.float32))
        z_frozen = z_train + noise.to(z_train.dtype) * noise_width
    step = make_training_step(model, options, batch_size)
    monitor = _Monitor(options)
    reporter = make_reporter(options.verbose, options.max_iter)
    learning_rate = options.learning_rate
    decays_left = N_LEARNING_RATE_DECAYS if options.schedule == "adaptive" else 0
    try:
        for epoch in range(1, options.max_iter + 1):
            train_nll = run_epoch(model, step, z_train, batch_size, rng, device,
                                  context_train, noise_width) - log_det_offset
            # The weights validated and kept are the average, where there is one;
            # training goes on from the last iterate.
            with step.average.applied() if step.average else contextlib.nullcontext():
                score = -train_nll
                if options.early_stopping and math.isfinite(train_nll):
                    score = validation_score(model, z_frozen, z_val, device, context_train,
                                             context_val) + log_det_offset
                if not (math.isfinite(train_nll) and math.isfinite(score)):
                    _handle_divergence(epoch, monitor.best_state is not None)
                    break
                monitor.record(epoch, train_nll, score, model)
            if reporter is not None:
                reporter.update(epoch, train_nll, score if options.early_stopping else None,
                                monitor.best)
            if monitor.on_plateau():
                if not decays_left:
                    break
                decays_left -= 1
                learning_rate *= LEARNING_RATE_DECAY
                step.set_learning_rate(learning_rate)
                # The plateau's last iterates have wandered off the best one: the
                # smaller steps start from the best weights (and a fresh average).
                monitor.restart_from_best(model)
                if step.average:
                    step.average.reset()
        else:
            _warn_not_converged(options)
    except KeyboardInterrupt:
        if monitor.best_state is None:
            raise
        warnings.warn(
            f"Training interrupted by the user after {monitor.result.n_iter} epoch(s); keeping "
            f"the state of epoch {monitor.result.best_iter}.",
            UserWarning,
            stacklevel=4,
        )
    finally:
        step.close()
        if reporter is not None:
            reporter.close()
    result = monitor.finish(model)
    _warn_if_below_the_standard_gaussian(result, z_val if options.early_stopping else z_train,
                                         options, log_det_offset)
    return result


#: How far (nats per row and feature) below the standardised data's own Gaussian a
#: kept model may score before the fit is called a failure.
FAILED_FIT_MARGIN = 1.0


def _warn_if_below_the_standard_gaussian(result: TrainingResult, z: torch.Tensor,
                                         options: TrainingOptions, log_det_offset: float):
    """Warn when training ended far below where it starts.

    The data are standardised, so N(0, I) on them (a diagonal Gaussian fitted to
    the data) is a model every flow can express and nearly starts from. A kept
    model more than one nat per feature below it has not diverged to infinity
    but has failed all the same: too large a step size, typically.
    """
    if result.n_iter == 0:
        return
    if options.early_stopping:
        kept = result.best_validation_score
        where = "validation"
    else:
        kept = -result.loss_curve[result.best_iter - 1]
        where = "training"
    n_features = z.shape[1]
    z = z.double()
    gaussian = float((-0.5 * z.square().sum(dim=1)).mean()
                     - 0.5 * n_features * math.log(2 * math.pi) + log_det_offset)
    if kept < gaussian - FAILED_FIT_MARGIN * n_features:
        warnings.warn(
            f"Training failed: the kept model's {where} log-likelihood ({kept:.6g} per row) "
            f"is far below that of a Gaussian fitted to the same data ({gaussian:.6g}). "
            f"Try a smaller learning_rate_init (it is {options.learning_rate:g}), a larger "
            "batch_size or alpha.",
            ConvergenceWarning,
            stacklevel=4,
        )


def _warn_not_converged(options: TrainingOptions) -> None:
    monitored = "validation log-likelihood" if options.early_stopping else "training loss"
    warnings.warn(
        f"Stochastic optimiser: maximum iterations ({options.max_iter}) reached and "
        f"the optimisation hasn't converged yet: the {monitored} was still improving "
        f"within the last {options.n_iter_no_change} epochs. Increase max_iter to "
        "fit longer.",
        ConvergenceWarning,
        stacklevel=5,
    )


def _handle_divergence(epoch: int, has_good_state: bool) -> None:
    advice = ("Try a smaller learning_rate_init, a larger batch_size or alpha, or check the "
              "data for extreme values.")
    if not has_good_state:
        raise FloatingPointError(
            f"Training diverged: the log-likelihood became non-finite in epoch {epoch}. {advice}"
        )
    warnings.warn(
        f"Training diverged in epoch {epoch} (non-finite log-likelihood); stopped and kept "
        f"the state of the best earlier epoch. {advice}",
        ConvergenceWarning,
        stacklevel=4,
    )
