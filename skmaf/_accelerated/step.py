"""The accelerated training step: flat parameters, one Adam kernel, and for a MAF the
hand-written backward pass; the same update as :class:`~skmaf._training.step.ReferenceStep`."""

from __future__ import annotations

import types
import warnings

import torch

from .._training.averaging import WeightAverage
from .._training.options import TrainingOptions
from .._training.step import adam_state_on_cpu, negative_log_likelihood, parameter_groups
from ..flows import MaskedLinear
from .adam import FlatAdam
from .flat_parameters import FlatParameters, split_like
from .manual_backward import ManualBackward, supports_manual_backward

__all__ = ["AcceleratedStep", "CompiledLoss"]


class AcceleratedStep:
    """One minibatch update of ``model``: the loss, its gradient, then an Adam step.

    While it exists, ``model``'s parameters are views into one flat tensor per
    parameter group (:class:`.FlatParameters`) that :class:`.FlatAdam`
    updates in one call each; :meth:`close` gives them their own storage back.

    The gradient comes from :class:`.ManualBackward` when the model is a MAF or
    MAF MoG it covers and ``manual_backward`` is true, and from autograd through the
    model's modules otherwise (through ``torch.compile`` with ``compile``).
    The manual pass multiplies by the raw weights, not by weight and mask as
    the modules do: after each Adam step the weights outside the masks are set
    back to zero, so the weights inside follow exactly the trajectory of the
    masked forward pass (Adam is elementwise).
    """

    def __init__(self, model, options: TrainingOptions, batch_size: int, *,
                 manual_backward: bool = True):
        self.model = model
        groups = parameter_groups(model, options, batch_size)
        self.parameters = FlatParameters([members for members, _ in groups])
        self.optimizer = FlatAdam([(flat, decay) for flat, (_, decay)
                                   in zip(self.parameters.flat, groups)],
                                  lr=options.learning_rate)
        self._manual = None
        self._masks, self._masked = {}, []
        if manual_backward and supports_manual_backward(model):
            self._manual = ManualBackward(model, self.parameters.gradients)
            self._masks = {layer.weight: layer.mask for layer in model.modules()
                           if isinstance(layer, MaskedLinear)}
            self._masked = [(flat, mask) for flat, group, mask in zip(
                self.parameters.flat, self.parameters.groups,
                self.parameters.flatten(self._masks, 1.0)) if any(p in self._masks for p in group)]
            self._apply_masks()
        self.loss = (CompiledLoss() if options.compile and self._manual is None
                     else negative_log_likelihood)
        self.average = (WeightAverage(self.parameters.flat, options.ema_decay)
                        if options.ema_decay > 0 else None)

    def set_learning_rate(self, learning_rate: float) -> None:
        """Adam's step size from the next step on (the adaptive schedule lowers it)."""
        self.optimizer.lr = float(learning_rate)

    @torch.no_grad()
    def _apply_masks(self) -> None:
        for flat, mask in self._masked:
            flat.mul_(mask)

    def __call__(self, batch: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Update the model on ``batch``; returns the minibatch loss (0-d, detached)."""
        if self._manual is not None:
            loss = self._manual(batch)
        else:
            self.model.zero_grad(set_to_none=True)
            loss = self.loss(self.model, batch, context)
            loss.backward()
            self.parameters.gather_gradients()
        self.optimizer.step()
        self._apply_masks()
        if self.average is not None:
            self.average.update()
        return loss.detach()

    def optimizer_state(self) -> dict:
        """Adam's state by parameter name, as :class:`~skmaf._training.step.ReferenceStep`
        lays it out: the flat moments split back into each parameter's shape. Outside
        the masks the moments are zero, as the reference's are: there the manual pass's
        dense gradient moved only weights that are reset after every step."""
        names = {p: name for name, p in self.model.named_parameters()}
        state = {}
        for index, group in enumerate(self.parameters.groups):
            if index not in self.optimizer.state:
                continue
            group_state = self.optimizer.state[index]
            moments = [split_like(group_state[key], group) for key in ("exp_avg", "exp_avg_sq")]
            for p, exp_avg, exp_avg_sq in zip(group, *moments):
                mask = self._masks.get(p, 1.0)
                state[names[p]] = adam_state_on_cpu(group_state["step"], exp_avg * mask,
                                                    exp_avg_sq * mask)
        return state

    def load_optimizer_state(self, state: dict) -> None:
        names = {p: name for name, p in self.model.named_parameters()}
        for index, (flat, group) in enumerate(zip(self.parameters.flat, self.parameters.groups)):
            saved = [state.get(names[p]) for p in group]
            if any(entry is None for entry in saved):
                continue
            self.optimizer.state[index] = {
                "step": saved[0]["step"].to(flat.device, torch.float32, copy=True),
                **{key: torch.cat([entry[key].reshape(-1) for entry in saved]).to(flat)
                   for key in ("exp_avg", "exp_avg_sq")}}

    def close(self) -> None:
        self.parameters.release()


#: One compiled loss per architecture (the model's repr, device and dtype), for the process.
_COMPILED_LOSSES: dict[tuple, object] = {}


def _compiled_loss_for(model):
    """``torch.compile`` of the loss, one per architecture.

    torch compiles a function anew for each architecture it meets and gives up,
    silently falling back to eager mode, after a few (its recompile limit),
    counted per code object; a model search easily tries more. So each
    architecture gets its own copy of the function's code object, with a cache
    of its own, and refits of an architecture reuse it (listed in
    :mod:`.private_ops`: it relies on how torch keys its cache).
    """
    reference = next(model.parameters())
    key = (repr(model), str(reference.device), str(reference.dtype))
    if key not in _COMPILED_LOSSES:
        code = negative_log_likelihood.__code__.replace()  # a new code object: a new cache
        function = types.FunctionType(code, negative_log_likelihood.__globals__,
                                      negative_log_likelihood.__name__,
                                      negative_log_likelihood.__defaults__)
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

    def __call__(self, model, batch: torch.Tensor, context: torch.Tensor | None = None):
        if self._compiled is not None:
            return self._compiled(model, batch, context)
        if self._failed:
            return negative_log_likelihood(model, batch, context)
        try:
            compiled = _compiled_loss_for(model)
            loss = compiled(model, batch, context)
        except Exception as exc:  # torch raises several types, by backend and platform
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warnings.warn(
                f"compile=True: torch.compile failed ({type(exc).__name__}: {reason[:200]}); "
                "training continues in eager mode.",
                UserWarning,
                stacklevel=2,
            )
            self._failed = True
            return negative_log_likelihood(model, batch, context)
        self._compiled = compiled
        return loss
