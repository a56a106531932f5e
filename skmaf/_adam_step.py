"""Adam's fused kernel, called without ``torch.optim``'s per-step Python.

``torch.optim.Adam(fused=True).step()`` spends about 0.13 ms per call before
its kernel runs (hooks, grouping the tensors by device and dtype, state
lookups): for a MAF's two flat parameter tensors at D=62 the step took 227
microseconds, the kernel alone 97 (one CPU thread), 2-4% of a whole training
step (``benchmarks/step_parts.py``, "Adam step").
"""

from __future__ import annotations

import torch

__all__ = ["AdamStep"]


class AdamStep:
    """``optimizer.step()`` for a fused ``torch.optim.Adam``, with the kernel called directly.

    The first call goes through ``optimizer.step()``, which creates Adam's
    state (or uses state loaded by ``load_state_dict``); later calls pass that
    state's tensors, which the kernel updates in place, to the kernel torch
    itself calls, with the same arguments: the update is bitwise the same
    (tests/test_training.py). Any other optimiser, or options this shortcut
    does not cover (amsgrad, tensor learning rates, gradient scaling,
    decoupled weight decay), always goes through ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self._direct = _covered(optimizer)
        self._calls = None  # (parameter, state, group) per parameter, after the first step

    def __call__(self) -> None:
        if self._calls is None:
            self.optimizer.step()
            if self._direct:
                self._calls = [(p, self.optimizer.state[p], group)
                               for group in self.optimizer.param_groups for p in group["params"]]
            return
        for p, state, group in self._calls:
            steps = [state["step"]]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_([p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
                               steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                               weight_decay=group["weight_decay"], eps=group["eps"],
                               maximize=group["maximize"], grad_scale=None, found_inf=None)


def _covered(optimizer) -> bool:
    if type(optimizer) is not torch.optim.Adam or not hasattr(torch, "_fused_adam_"):
        return False
    return all(group.get("fused") and not group["amsgrad"] and not group.get("differentiable")
               and not group.get("decoupled_weight_decay", False)
               and isinstance(group["lr"], float)
               and all(isinstance(beta, float) for beta in group["betas"])
               for group in optimizer.param_groups)
