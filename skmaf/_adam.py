"""Adam over the flat parameter tensors of training, without ``torch.optim``.

Two costs of ``torch.optim.Adam`` that skmaf does not pay:

- building any ``torch.optim`` optimiser imports ``torch._dynamo`` (about 800
  modules): 1.9 of the 1.96 s that a tiny model's first fit in a process
  took, against 0.03 s for its second fit (one CPU thread);
- its ``step`` spends about 0.1 ms of Python around the fused kernel: 162-193
  against 74-108 microseconds for a MAF's two flat tensors at D = 10 and 62,
  1-2% of a whole training step (``benchmarks/step_parts.py``, "Adam step").

The update is torch's own: the fused kernel that ``torch.optim.Adam(fused=True)``
calls, with the same arguments (bitwise the same parameters and moments,
tests/test_training.py), or, where this torch has no fused kernel for the
parameters' device and dtype (CPU before torch 2.4), the formulas of torch's
single-tensor Adam.
"""

from __future__ import annotations

import math

import torch

__all__ = ["FlatAdam"]

_MOMENTS = ("exp_avg", "exp_avg_sq")


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
        ``exp_avg_sq``, made at its first step; the layout of
        ``torch.optim.Adam.state_dict()["state"]``.
    """

    def __init__(self, groups, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.groups = [(parameter, float(decay)) for parameter, decay in groups]
        self.lr, self.eps = float(lr), float(eps)
        self.beta1, self.beta2 = (float(beta) for beta in betas)
        self.state = {}

    @torch.no_grad()
    def step(self) -> None:
        for index, (parameter, decay) in enumerate(self.groups):
            state = self.state.get(index)
            if state is None:
                state = self.state[index] = {
                    "step": torch.zeros((), dtype=torch.float32, device=parameter.device),
                    **{name: torch.zeros_like(parameter) for name in _MOMENTS}}
            state["step"] += 1
            if _has_fused_kernel(parameter):
                torch._fused_adam_(
                    [parameter], [parameter.grad], [state["exp_avg"]], [state["exp_avg_sq"]],
                    [], [state["step"]], amsgrad=False, lr=self.lr, beta1=self.beta1,
                    beta2=self.beta2, weight_decay=decay, eps=self.eps, maximize=False,
                    grad_scale=None, found_inf=None)
            else:
                self._single_tensor_update(parameter, decay, state)

    def _single_tensor_update(self, parameter, decay, state) -> None:
        # torch.optim.adam._single_tensor_adam, without its options.
        grad = parameter.grad if decay == 0 else parameter.grad.add(parameter, alpha=decay)
        step = state["step"].item()
        state["exp_avg"].lerp_(grad, 1 - self.beta1)
        state["exp_avg_sq"].mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = self.lr / (1 - self.beta1 ** step)
        denominator = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - self.beta2 ** step)).add_(
            self.eps)
        parameter.addcdiv_(state["exp_avg"], denominator, value=-step_size)

    def state_dict(self) -> dict:
        """``{"state": ...}`` as ``torch.optim.Adam.state_dict()`` lays it out (tensors held,
        not copied)."""
        return {"state": self.state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the moments of ``state_dict["state"]`` (copied to the parameters' device)."""
        self.state = {}
        for index, values in state_dict["state"].items():
            parameter = self.groups[index][0]
            self.state[index] = {
                "step": values["step"].to(parameter.device, torch.float32, copy=True),
                **{name: values[name].to(parameter.device, parameter.dtype, copy=True)
                   for name in _MOMENTS}}


_FUSED_KERNELS: dict = {}


def _has_fused_kernel(like: torch.Tensor) -> bool:
    """Whether ``torch._fused_adam_`` runs for tensors like ``like`` (tried once per device
    type and dtype, on scratch tensors)."""
    key = (like.device.type, like.dtype)
    if key not in _FUSED_KERNELS:
        try:
            scratch = [torch.zeros(1, dtype=like.dtype, device=like.device) for _ in range(4)]
            step = torch.ones((), dtype=torch.float32, device=like.device)
            torch._fused_adam_([scratch[0]], [scratch[1]], [scratch[2]], [scratch[3]], [],
                               [step], amsgrad=False, lr=1e-3, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=1e-8, maximize=False,
                               grad_scale=None, found_inf=None)
            _FUSED_KERNELS[key] = True
        except (AttributeError, RuntimeError, NotImplementedError):
            _FUSED_KERNELS[key] = False
    return _FUSED_KERNELS[key]
