"""Real NVP's affine coupling layer (Dinh et al., 2017; MAF paper, appendix D.1)."""

from __future__ import annotations

import numpy as np
import torch

from .autoregressive import soft_clamp
from .base import FlowTransform
from .layers import mlp
from .ranges import InputRange

__all__ = ["AffineCoupling", "alternating_masks"]


def alternating_masks(n_features: int, n_layers: int) -> list[np.ndarray]:
    """Boolean masks of the features each layer passes through unchanged.

    Layer k conditions on the features whose index has the parity of k, so
    consecutive layers swap roles and every feature is transformed (for D >= 2).
    """
    index = np.arange(n_features)
    return [(index + k) % 2 == 0 for k in range(n_layers)]


class AffineCoupling(FlowTransform):
    """``u_b = (x_b - t(x_a, c)) * exp(-s(x_a, c))``, ``u_a = x_a``.

    ``x_a`` are the features where ``mask`` is True and ``c`` the optional
    context, which both nets see next to ``x_a``. The scale net ``s`` has tanh
    hidden units and the shift net ``t`` ReLU hidden units, as in the paper's
    appendix D.1. Like MAF's log-scale, ``s`` is soft-clamped to ±7. Density
    and sampling each take one pass.

    With nothing to condition on (one feature and no context, or a mask with
    no True entry) the nets see no input and the layer is an element-wise
    affine map with learned constants.

    Beyond the range of the inputs recorded by :meth:`freeze_statistics` the
    nets see the nearest point of that range, so the layer is affine there
    (:mod:`.ranges`).
    """

    has_statistics = True

    def __init__(self, mask: np.ndarray, n_hidden_layers: int, n_hidden_units: int,
                 n_context_features: int = 0, generator: torch.Generator | None = None):
        super().__init__()
        self.n_context_features = n_context_features
        self.register_buffer("conditioning", torch.as_tensor(np.flatnonzero(mask)))
        self.register_buffer("transformed", torch.as_tensor(np.flatnonzero(~mask)))
        n_in = len(self.conditioning) + n_context_features
        n_out = len(self.transformed)
        self.scale_net = mlp(n_in, n_out, n_hidden_layers, n_hidden_units, "tanh", generator)
        self.shift_net = mlp(n_in, n_out, n_hidden_layers, n_hidden_units, "relu", generator)
        self.input_range = InputRange(len(mask))
        self.context_range = InputRange(n_context_features) if n_context_features else None

    def freeze_statistics(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self._record(x, context, widen=False)

    def widen_input_range(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self._record(x, context, widen=True)

    def _record(self, x, context, widen):
        self.input_range.record(x, widen)
        if self.context_range is not None and context is not None:
            self.context_range.record(context, widen)

    def _shift_and_log_scale(self, x: torch.Tensor, context: torch.Tensor | None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        if (context is None) != (self.n_context_features == 0):
            raise ValueError(f"This coupling layer takes {self.n_context_features} context "
                             f"features; got {'none' if context is None else 'a context'}.")
        # u_a == x_a, so the inverse bounds the same view as the forward map.
        x_a = self.input_range(x)[:, self.conditioning]
        if context is not None:
            x_a = torch.cat([x_a, self.context_range(context)], dim=1)
        return self.shift_net(x_a), soft_clamp(self.scale_net(x_a))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        shift, log_scale = self._shift_and_log_scale(x, context)
        u = x.clone()
        u[:, self.transformed] = (x[:, self.transformed] - shift) * torch.exp(-log_scale)
        return u, -log_scale.sum(dim=-1)

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        shift, log_scale = self._shift_and_log_scale(u, context)  # u_a == x_a
        x = u.clone()
        x[:, self.transformed] = u[:, self.transformed] * torch.exp(log_scale) + shift
        return x
