"""Adam over the flat parameter tensors of training, without ``torch.optim``.

Building a ``torch.optim`` optimiser imports ``torch._dynamo`` (seconds, once
per process) and its ``step`` spends Python time around the kernel; over one
flat tensor per group, one fused kernel call does the whole update
(benchmarks/README.md, "Adam step"). The update is torch's own: the fused
kernel that ``torch.optim.Adam(fused=True)`` calls, with the same arguments,
or, where the probe of :mod:`.private_ops` finds no working kernel, the
formulas of torch's single-tensor Adam (:func:`adam_update_reference`).
"""

from __future__ import annotations

import math

import torch

from . import private_ops

__all__ = ["FlatAdam", "adam_update_reference"]

_MOMENTS = ("exp_avg", "exp_avg_sq")


@torch.no_grad()
def adam_update_reference(parameter, grad, exp_avg, exp_avg_sq, step: float, lr: float,
                          beta1: float, beta2: float, weight_decay: float, eps: float) -> None:
    """One Adam update in place, as ``torch.optim.adam._single_tensor_adam`` computes it
    (coupled L2 weight decay; ``step`` counts this update)."""
    if weight_decay:
        grad = grad.add(parameter, alpha=weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr / (1 - beta1 ** step)
    denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(eps)
    parameter.addcdiv_(exp_avg, denominator, value=-step_size)


class FlatAdam:
    """Adam (coupled L2 weight decay, as ``torch.optim.Adam``) for one tensor per group.

    Parameters
    ----------
    groups : list of (torch.Tensor, float)
        Each parameter tensor, its ``.grad`` set before each :meth:`step`, and
        its weight decay.
    lr : float
    betas : tuple of float, default=(0.9, 0.999)
    eps : float, default=1e-8

    Attributes
    ----------
    state : dict
        ``state[i]``: group i's ``step`` (a float32 0-d tensor), ``exp_avg`` and
        ``exp_avg_sq``, made at its first step.
    """

    def __init__(self, groups, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.groups = [(parameter, float(decay)) for parameter, decay in groups]
        self.lr, self.eps = float(lr), float(eps)
        self.beta1, self.beta2 = (float(beta) for beta in betas)
        self.state = {}
        # Probed on the CPU; torch has the kernel for CUDA tensors wherever it has it for the CPU.
        self.fused = private_ops.available("fused_adam")

    @torch.no_grad()
    def step(self) -> None:
        for index, (parameter, decay) in enumerate(self.groups):
            state = self.state.get(index)
            if state is None:
                state = self.state[index] = {
                    "step": torch.zeros((), dtype=torch.float32, device=parameter.device),
                    **{name: torch.zeros_like(parameter) for name in _MOMENTS}}
            state["step"] += 1
            if self.fused and parameter.device.type in ("cpu", "cuda"):
                torch._fused_adam_(
                    [parameter], [parameter.grad], [state["exp_avg"]], [state["exp_avg_sq"]],
                    [], [state["step"]], amsgrad=False, lr=self.lr, beta1=self.beta1,
                    beta2=self.beta2, weight_decay=decay, eps=self.eps, maximize=False,
                    grad_scale=None, found_inf=None)
            else:
                adam_update_reference(parameter, parameter.grad, state["exp_avg"],
                                      state["exp_avg_sq"], state["step"].item(), self.lr,
                                      self.beta1, self.beta2, decay, self.eps)
