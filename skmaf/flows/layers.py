"""Linear layers initialised from an explicit generator, and connection counting."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import onednn

__all__ = ["ACTIVATIONS", "Linear", "MaskedLinear", "apply_masks", "count_connections",
           "in_place", "mlp"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}

_IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_}


def in_place(activation: nn.Module):
    """``activation`` as a function that overwrites its argument (itself if it has no such form).

    For a layer's fresh output that nothing else holds: no new tensor. Large
    fresh tensors are costly on the CPU beyond their arithmetic (a 2048 x 100
    float64 one is 1.6 MB, which glibc maps anew, page by page, each time).
    """
    return _IN_PLACE.get(type(activation), activation)


class Linear(nn.Module):
    """A dense layer initialised like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(fan_in)``)
    but from an explicit generator, so building a model never touches the global torch RNG.

    ``in_features`` may be 0 (a coupling layer with nothing to condition on): the
    output is then the learned bias alone.
    """

    def __init__(self, in_features: int, out_features: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        bound = 1.0 / math.sqrt(max(in_features, 1))
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator)
        )
        self.bias = nn.Parameter(
            torch.empty(out_features).uniform_(-bound, bound, generator=generator)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        # No gradient wanted (validation, batch-norm statistics, scoring): oneDNN
        # where it runs, which has no backward.
        return onednn.linear(x, self.weight, self.bias)

    @property
    def n_connections(self) -> int:
        """Number of weights that connect an input to an output (biases excluded)."""
        return self.weight.numel()

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}"


class MaskedLinear(Linear):
    """A linear layer whose weights outside a fixed 0/1 mask (out x in) are zero.

    The mask is applied to the weights, not to every forward pass: they are
    zeroed outside it at construction, and whoever updates them restores the
    zeros (the training step does, after each optimiser step). A masked
    product in every forward pass, and its backward, cost a training step two
    extra kernels per layer; on a small flow, where per-kernel
    overhead dominates, that was measurable (benchmarks/README.md).
    """

    def __init__(self, mask: np.ndarray, generator: torch.Generator | None = None):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, generator)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))
        apply_masks([self])

    @property
    def n_connections(self) -> int:
        return int(self.mask.sum().item())


@torch.no_grad()
def apply_masks(layers: list[MaskedLinear]) -> None:
    """Zero the weights of ``layers`` outside their masks, in one fused call."""
    if layers:
        torch._foreach_mul_([layer.weight for layer in layers], [layer.mask for layer in layers])


def mlp(in_features: int, out_features: int, n_hidden_layers: int, n_hidden_units: int,
        activation: str, generator: torch.Generator | None = None) -> nn.Sequential:
    """A dense MLP: ``n_hidden_layers`` layers of ``n_hidden_units`` and a linear output."""
    widths = [in_features] + [n_hidden_units] * n_hidden_layers + [out_features]
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [Linear(fan_in, fan_out, generator), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers[:-1])


def count_connections(module: nn.Module) -> int:
    """Connection weights in ``module``: the paper's parameter count (appendix C).

    Masked-out weights and biases are not counted, nor are batch-norm parameters.
    """
    return sum(layer.n_connections for layer in module.modules() if isinstance(layer, Linear))
