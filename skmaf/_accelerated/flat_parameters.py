"""A model's parameters as views into one flat tensor per group, while it trains.

Per-tensor work in an optimiser step is paid once per tensor, and a MAF has
about 30 tensors (benchmarks/README.md, "Adam step"). So during training each
parameter's data is a view into a flat tensor, and the optimiser
(:class:`~skmaf._accelerated.adam.FlatAdam`) and the mask product see the flat
tensors only; each flat tensor's ``.grad`` is a buffer of
which every parameter owns a view, where gradients are written.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FlatParameters", "split_like"]


class FlatParameters:
    """Bind ``groups`` of parameters to one flat :class:`~torch.nn.Parameter` each.

    Parameters
    ----------
    groups : list of list of torch.nn.Parameter
        Each group, not empty, becomes one flat parameter (an optimiser
        parameter group). A parameter must not appear twice; all must share
        dtype and device.

    Attributes
    ----------
    flat : list of torch.nn.Parameter
        One per group, its ``.grad`` allocated.
    groups : list of list of torch.nn.Parameter
        The parameters behind each flat tensor, in order.
    gradients : dict
        ``gradients[p]``: the view of its group's gradient buffer that belongs
        to parameter ``p``, shaped like ``p``.

    Call :meth:`release` when training ends: the parameters get storage of
    their own again, so that the model pickles, copies and moves as before.
    """

    def __init__(self, groups: list[list[nn.Parameter]]):
        self.flat = []
        self.gradients = {}
        self.groups = []
        for group in groups:
            group = list(group)
            flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in group]))
            flat.grad = torch.zeros_like(flat)
            for p, data, grad in zip(group, split_like(flat.data, group),
                                     split_like(flat.grad, group)):
                p.data = data
                self.gradients[p] = grad
            self.flat.append(flat)
            self.groups.append(group)

    def gather_gradients(self) -> None:
        """Copy each parameter's ``.grad`` (set by autograd) into its view; a missing one is 0."""
        for flat, group in zip(self.flat, self.groups):
            grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in group]
            torch.cat([g.reshape(-1) for g in grads], out=flat.grad)

    def flatten(self, values: dict, default: float) -> list[torch.Tensor]:
        """``values[p]`` (shaped like ``p``) laid out like the flat tensors; ``default``
        for the parameters not in ``values``."""
        return [torch.cat([values[p].reshape(-1).to(flat) if p in values
                           else torch.full((p.numel(),), default).to(flat) for p in group])
                for flat, group in zip(self.flat, self.groups)]

    def release(self) -> None:
        """Give every parameter its own storage again; the flat tensors are no longer used."""
        for group in self.groups:
            for p in group:
                p.data = p.data.clone()
        self.flat, self.gradients, self.groups = [], {}, []


def split_like(flat: torch.Tensor, parameters) -> list[torch.Tensor]:
    """``flat`` cut into views shaped like each of ``parameters``, in order."""
    sizes = [p.numel() for p in parameters]
    return [part.view(p.shape) for part, p in zip(flat.split(sizes), parameters)]
