"""Linear layers initialised from an explicit generator, and connection counting."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "Linear", "MaskedLinear", "count_connections", "mlp"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


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
        return F.linear(x, self.weight, self.bias)

    @property
    def n_connections(self) -> int:
        """Number of weights that connect an input to an output (biases excluded)."""
        return self.weight.numel()

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}"


class MaskedLinear(Linear):
    """A linear layer whose weights outside a fixed 0/1 mask (out x in) have no effect.

    The mask multiplies the weights in every forward pass, so whatever updates
    them (skmaf's training, or a user's ``torch.optim`` loop on ``module_``),
    the layer keeps the connectivity that makes a MADE autoregressive. The
    weights outside the mask are also zeroed at construction, so that they
    hold no stray values and count for nothing in an L2 penalty.
    """

    def __init__(self, mask: np.ndarray, generator: torch.Generator | None = None):
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features, generator)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)

    @property
    def n_connections(self) -> int:
        return int(self.mask.sum().item())


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
