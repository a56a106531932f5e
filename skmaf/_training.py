"""Maximum-likelihood training with Adam and early stopping: the only optimiser in skmaf.

The loop follows scikit-learn's ``MLPRegressor`` (``_fit_stochastic``): shuffle
each epoch, minibatches, L2 penalty ``alpha``, and stop when the monitored
quantity has not improved by more than ``tol`` for ``n_iter_no_change`` epochs.
With early stopping the monitored quantity is the validation log-likelihood
and the best epoch's weights are restored at the end; without it, the training
loss, and the last weights are kept. With ``ema_decay`` the weights validated
and kept are the moving average of the iterates (:mod:`skmaf._averaging`).
"""

from __future__ import annotations

import contextlib
import math
import types
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._adam import FlatAdam
from ._averaging import WeightAverage
from ._device import evaluate_in_chunks
from ._flat_parameters import FlatParameters
from ._progress import make_reporter
from .flows import Flow
from .flows.layers import MaskedLinear
from .flows.manual_backward import ManualBackward, supports_manual_backward

__all__ = [
    "CompiledLoss",
    "TrainingOptions",
    "TrainingResult",
    "TrainingStep",
    "make_optimizer",
    "negative_log_likelihood",
    "run_epoch",
    "train_flow",
]


@dataclass(frozen=True)
class TrainingOptions:
    max_iter: int
    batch_size: int
    learning_rate: float
    alpha: float
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
    stopped_early: bool = False


def make_optimizer(model: Flow, options: TrainingOptions,
                   batch_size: int) -> tuple[FlatParameters, FlatAdam]:
    """Flatten ``model``'s parameters into two groups and make Adam over them.

    MLPRegressor's penalty is ``0.5 * alpha * sum(W**2) / batch_size`` on the
    connection weights only; coupled Adam weight decay on the weights' group
    is exactly that penalty's gradient. The rest (biases, batch norm) has none.
    """
    named = list(model.named_parameters())
    weights = [p for name, p in named if name.endswith("weight")]
    others = [p for name, p in named if not name.endswith("weight")]
    groups = [(members, decay) for members, decay in
              [(weights, options.alpha / batch_size), (others, 0.0)] if members]
    parameters = FlatParameters([members for members, _ in groups])
    optimizer = FlatAdam([(flat, decay) for flat, (_, decay) in zip(parameters.flat, groups)],
                         lr=options.learning_rate)
    return parameters, optimizer


class TrainingStep:
    """One minibatch update of ``model``: the loss, its gradient, then an Adam step.

    While it exists, ``model``'s parameters are views into two flat tensors
    (:class:`~skmaf._flat_parameters.FlatParameters`) that Adam
    (:class:`~skmaf._adam.FlatAdam`) updates in one fused call each;
    :meth:`close` gives them their own storage back.

    The gradient comes from the hand-written backward pass of
    :mod:`skmaf.flows.manual_backward` when ``model`` is a MAF it covers and
    ``manual_backward`` is true, and from autograd otherwise: of ``loss``
    (default :func:`negative_log_likelihood`), through ``torch.compile`` with
    ``compile`` (a :class:`CompiledLoss`). A MAF that the hand-written pass
    covers trains as fast without compilation (benchmarks/README.md), so
    ``compile`` skips it and its 5-20 s. ``manual_backward=False`` is for
    callers that rely on the modules' forward hooks, which the manual pass
    bypasses.

    With ``options.ema_decay`` > 0, ``average`` is a
    :class:`~skmaf._averaging.WeightAverage` of the parameters, updated after
    every step; None otherwise.
    """

    def __init__(self, model: Flow, options: TrainingOptions, batch_size: int, *,
                 compile: bool = False, manual_backward: bool = True, loss=None):
        self.model = model
        self.parameters, self.optimizer = make_optimizer(model, options, batch_size)
        self.manual_backward = (manual_backward and loss is None
                                and supports_manual_backward(model))
        if loss is None:
            loss = (CompiledLoss() if compile and not self.manual_backward
                    else negative_log_likelihood)
        self.loss = loss
        self._manual = (ManualBackward(model, self.parameters.gradients)
                        if self.manual_backward else None)
        # Masked layers multiply by their masks once per step, here, instead of
        # in every forward pass. Adam moves a masked-out weight (its gradient
        # is not zero), and this puts it back to zero: the weights inside the
        # masks follow exactly the trajectory of a masked forward pass, since
        # Adam is elementwise. One product over each flat tensor does it.
        masks = {layer.weight: layer.mask for layer in model.modules()
                 if isinstance(layer, MaskedLinear)}
        self._masked = [(flat, mask) for flat, group, mask in zip(
            self.parameters.flat, self.parameters.groups, self.parameters.flatten(masks, 1.0))
            if any(p in masks for p in group)]
        self.average = (WeightAverage(self.parameters.flat, options.ema_decay)
                        if options.ema_decay > 0 else None)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Update the model on ``batch``; returns the minibatch loss (0-d, detached)."""
        if self.manual_backward:
            loss = self._manual(batch)
        else:
            self.model.zero_grad(set_to_none=True)
            loss = self.loss(self.model, batch)
            loss.backward()
            self.parameters.gather_gradients()
        self.optimizer.step()
        with torch.no_grad():
            for flat, mask in self._masked:
                flat.mul_(mask)
        if self.average is not None:
            self.average.update()
        return loss.detach()

    def close(self) -> None:
        self.parameters.release()


def negative_log_likelihood(model: Flow, batch: torch.Tensor) -> torch.Tensor:
    """The training loss: the mean negative log-likelihood of a minibatch."""
    return -model.log_prob(batch).mean()


#: One compiled loss per architecture (the model's repr, device and dtype), for the process.
_COMPILED_LOSSES: dict[tuple, object] = {}


def _compiled_loss_for(model: Flow):
    """``torch.compile`` of the loss, shared by all models of ``model``'s architecture.

    torch compiles a function anew for each architecture it meets and gives up,
    silently falling back to eager mode, after 8 (``recompile_limit``); a model
    search easily tries more. So each architecture gets its own copy of the
    function, with a cache of its own, and refits of an architecture reuse it.
    """
    reference = next(model.parameters())
    key = (repr(model), str(reference.device), str(reference.dtype))
    if key not in _COMPILED_LOSSES:
        code = negative_log_likelihood.__code__.replace()  # a new code object: a new cache
        function = types.FunctionType(code, negative_log_likelihood.__globals__,
                                      negative_log_likelihood.__name__)
        _COMPILED_LOSSES[key] = torch.compile(function, dynamic=True)
    return _COMPILED_LOSSES[key]


class CompiledLoss:
    """:func:`negative_log_likelihood` through ``torch.compile``, or eagerly if that fails.

    One compilation per architecture serves every minibatch size
    (``dynamic=True``): the near-equal batches of an epoch differ in size by
    one row. Compilation happens at the first call; if it raises (no C++
    compiler, an unsupported platform), the loss is computed eagerly from then
    on, with a warning.
    """

    def __init__(self):
        self._compiled = None  # set once a compiled call has succeeded
        self._failed = False

    def __call__(self, model: Flow, batch: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            return self._compiled(model, batch)
        if self._failed:
            return negative_log_likelihood(model, batch)
        try:
            compiled = _compiled_loss_for(model)
            loss = compiled(model, batch)
        except Exception as exc:  # torch raises several types, by backend and platform
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warnings.warn(
                f"compile=True: torch.compile failed ({type(exc).__name__}: {reason[:200]}); "
                "training continues in eager mode.",
                UserWarning,
                stacklevel=2,
            )
            self._failed = True
            return negative_log_likelihood(model, batch)
        self._compiled = compiled
        return loss


def _copy_state(model: Flow) -> dict:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def run_epoch(model: Flow, step: TrainingStep, z_train, batch_size, rng, device) -> float:
    """One pass of ``step`` over shuffled minibatches; returns the mean training NLL
    (model units)."""
    model.train()
    n_train = z_train.shape[0]
    # Near-equal batches (sizes differ by at most one) instead of a ragged last
    # batch: batch norm on a one- or two-row batch is meaningless.
    n_batches = max(n_train // batch_size, 1)
    total = torch.zeros((), device=device)
    for index in np.array_split(rng.permutation(n_train), n_batches):
        batch = z_train[torch.from_numpy(index)].to(device, non_blocking=True)
        total += step(batch) * len(index)
    return total.item() / n_train


def _validation_score(model, z_train, z_val, device) -> float:
    """Mean validation log-likelihood with batch norm frozen on the training set."""
    model.freeze_statistics(z_train)
    log_prob = evaluate_in_chunks(model.log_prob, z_val, device, z_train.dtype)
    return log_prob.double().mean().item()


def train_flow(model: Flow, z_train: torch.Tensor, z_val: torch.Tensor | None,
               options: TrainingOptions, rng: np.random.RandomState, device: torch.device,
               log_det_offset: float = 0.0) -> TrainingResult:
    """Fit ``model`` by maximum likelihood on ``z_train``; early-stop on ``z_val``.

    ``log_det_offset`` is the preprocessing's log-Jacobian: the reported losses
    and scores are per-sample log-likelihoods in the user's units.

    Raises ``FloatingPointError`` if the very first epoch is not finite. A
    later non-finite epoch restores the last good state with a warning.
    A ``KeyboardInterrupt`` after the first epoch keeps the best state, with a
    warning; before it, it propagates.
    """
    result = TrainingResult(validation_scores=[] if options.early_stopping else None)
    batch_size = min(options.batch_size, z_train.shape[0])
    step = TrainingStep(model, options, batch_size, compile=options.compile)
    best = -math.inf  # best monitored score: validation LL, or minus the training loss
    best_state = None
    no_improvement = 0
    reporter = make_reporter(options.verbose, options.max_iter)
    try:
        for epoch in range(1, options.max_iter + 1):
            train_nll = run_epoch(model, step, z_train, batch_size, rng, device)
            train_nll -= log_det_offset
            # The weights validated and kept are the average, where there is one;
            # training goes on from the last iterate.
            with step.average.applied() if step.average else contextlib.nullcontext():
                score = -train_nll
                if options.early_stopping and math.isfinite(train_nll):
                    score = _validation_score(model, z_train, z_val, device) + log_det_offset
                if not (math.isfinite(train_nll) and math.isfinite(score)):
                    _handle_divergence(epoch, best_state, options)
                    break
                result.n_iter = epoch
                result.loss_curve.append(train_nll)
                if options.early_stopping:
                    result.validation_scores.append(score)
                no_improvement = 0 if score > best + options.tol else no_improvement + 1
                improved = score > best
                best = max(score, best)
                # Early stopping keeps the best epoch; otherwise the last good one.
                if improved or not options.early_stopping:
                    best_state = _copy_state(model)
                    result.best_iter = epoch
            if reporter is not None:
                reporter.update(epoch, train_nll, score if options.early_stopping else None, best)
            if no_improvement >= options.n_iter_no_change:
                result.stopped_early = True
                break
        else:
            monitored = ("validation log-likelihood" if options.early_stopping
                         else "training loss")
            warnings.warn(
                f"Stochastic optimiser: maximum iterations ({options.max_iter}) reached and "
                f"the optimisation hasn't converged yet: the {monitored} was still improving "
                f"within the last {options.n_iter_no_change} epochs. Increase max_iter to "
                "fit longer.",
                ConvergenceWarning,
                stacklevel=4,
            )
    except KeyboardInterrupt:
        if best_state is None:
            raise
        warnings.warn(
            f"Training interrupted by the user after {result.n_iter} epoch(s); keeping the "
            f"state of epoch {result.best_iter}.",
            UserWarning,
            stacklevel=4,
        )
    finally:
        step.close()
        if reporter is not None:
            reporter.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if options.early_stopping:
        result.best_validation_score = result.validation_scores[result.best_iter - 1]
    return result


def _handle_divergence(epoch: int, best_state, options: TrainingOptions) -> None:
    advice = ("Try a smaller learning_rate_init, a larger batch_size or alpha, or check the "
              "data for extreme values.")
    if best_state is None:
        raise FloatingPointError(
            f"Training diverged: the log-likelihood became non-finite in epoch {epoch}. {advice}"
        )
    warnings.warn(
        f"Training diverged in epoch {epoch} (non-finite log-likelihood); stopped and kept "
        f"the state of the best earlier epoch. {advice}",
        ConvergenceWarning,
        stacklevel=4,
    )
