"""One minibatch update: the loss, its gradient by autograd, then an Adam step.

This is the reference: every model trains through it, unless the accelerator
(:mod:`skmaf._accelerated`) offers a faster step for the model, which gives
the same update to rounding (tests/accelerated/).
"""

from __future__ import annotations

import torch

from .averaging import WeightAverage
from .options import TrainingOptions

__all__ = ["ReferenceStep", "adam_state_on_cpu", "make_training_step", "negative_log_likelihood",
           "parameter_groups"]


def adam_state_on_cpu(step, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor) -> dict:
    """One parameter's Adam state, copied to the CPU: the layout every step saves and loads."""
    return {"step": torch.as_tensor(step, dtype=torch.float32).detach().to("cpu", copy=True),
            "exp_avg": exp_avg.detach().to("cpu", copy=True),
            "exp_avg_sq": exp_avg_sq.detach().to("cpu", copy=True)}


def negative_log_likelihood(model, batch: torch.Tensor,
                            context: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss: the mean negative log-likelihood of a minibatch."""
    return -model.log_prob(batch, context).mean()


def parameter_groups(model, options: TrainingOptions, batch_size: int) -> list[tuple[list, float]]:
    """``model``'s parameters as (parameters, weight decay) groups, empty groups left out.

    MLPRegressor's penalty is ``0.5 * alpha * sum(W**2) / batch_size`` on the
    connection weights only; Adam's coupled weight decay on the weights' group
    is exactly that penalty's gradient. The rest (biases, batch norm) has none.
    """
    named = list(model.named_parameters())
    weights = [p for name, p in named if name.endswith("weight")]
    others = [p for name, p in named if not name.endswith("weight")]
    groups = [(weights, options.l2_penalty / batch_size), (others, 0.0)]
    return [(members, decay) for members, decay in groups if members]


class ReferenceStep:
    """Autograd through the model's own modules and ``torch.optim.Adam``.

    With ``options.ema_decay`` > 0, ``average`` is a :class:`WeightAverage` of
    the parameters, updated after every step; None otherwise.
    ``optimizer_state`` and ``load_optimizer_state`` carry Adam's moments by
    parameter name, the layout every step shares (``partial_fit`` keeps it
    between calls).
    """

    def __init__(self, model, options: TrainingOptions, batch_size: int):
        self.model = model
        self.optimizer = torch.optim.Adam(
            [{"params": members, "weight_decay": decay}
             for members, decay in parameter_groups(model, options, batch_size)],
            lr=options.learning_rate)
        self.average = (WeightAverage(list(model.parameters()), options.ema_decay)
                        if options.ema_decay > 0 else None)

    def __call__(self, batch: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Update the model on ``batch``; returns the minibatch loss (0-d, detached)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = negative_log_likelihood(self.model, batch, context)
        loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return loss.detach()

    def optimizer_state(self) -> dict:
        """Adam's state as ``{parameter name: {"step", "exp_avg", "exp_avg_sq"}}``, CPU copies."""
        names = {p: name for name, p in self.model.named_parameters()}
        return {names[p]: adam_state_on_cpu(state["step"], state["exp_avg"], state["exp_avg_sq"])
                for p, state in self.optimizer.state.items()}

    def load_optimizer_state(self, state: dict) -> None:
        for name, p in self.model.named_parameters():
            if name in state:
                self.optimizer.state[p] = {
                    "step": state[name]["step"].to(torch.float32, copy=True),
                    **{key: state[name][key].to(p.device, p.dtype, copy=True)
                       for key in ("exp_avg", "exp_avg_sq")}}

    def set_learning_rate(self, learning_rate: float) -> None:
        """Adam's step size from the next step on (the adaptive schedule lowers it)."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

    def close(self) -> None:
        """Nothing to release; the accelerated step has."""


def make_training_step(model, options: TrainingOptions, batch_size: int, *,
                       manual_backward: bool = True):
    """The accelerator's step for ``model`` where it has one and is switched on; else
    :class:`ReferenceStep`. ``manual_backward=False`` asks for a step that runs the
    model's own forward (``partial_fit`` relies on its batch-norm hooks)."""
    from .. import _accelerated

    step = _accelerated.training_step(model, options, batch_size,
                                      manual_backward=manual_backward)
    return step if step is not None else ReferenceStep(model, options, batch_size)
