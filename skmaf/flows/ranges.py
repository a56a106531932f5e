"""What the conditioners see beyond the training data: the flow's tails.

A flow step ``u_i = x_i exp(-alpha_i) + beta_i`` is a bijection for *any*
functions ``alpha_i``, ``beta_i`` of the inputs before ``i`` (and of a
context). Left alone, those networks extrapolate beyond the data they were
trained on: a ReLU network linearly, so a row a little outside the training
range can drive every step's log-scale to its bound, and K stacked steps
compound those scales up to ``exp(7 K)``: a held-out inlier then scores
-1e14 nats.

Here every conditioner sees its inputs clamped to the box that the training
data span at its layer (recorded with the batch-norm statistics, after
training and at every validation). Inside the box nothing changes. Outside it,
the conditioner's outputs stay those of the nearest box point, so each step is
affine in the coordinates that left the box, with the slopes the model has on
the box's faces. The map stays a triangular bijection with a positive
diagonal, and its log-determinant is exactly the sum of the (now constant)
log-scales, so densities stay exact and normalised.

Consequence for the density (Gaussian base): along any ray that leaves every
layer's box, ``u`` is eventually affine in the distance ``t`` and the
log-determinant constant, so ``log p`` is exactly a concave quadratic in
``t``, ``log p(x_0) - <u_0, w> t - |w|^2 t^2 / 2``: a Gaussian tail at the
model's slope ``w`` at the box, rather than the ``exp(exp(t))``-like collapse
of compounding scales. A mixture base (MADE MoG) behaves the same, with its
widest component's tail.

During training (``module.training``) nothing is clamped: the training rows are
what the box is made of, and the gradient of a clamp would hide them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputRange"]


class InputRange(nn.Module):
    """Per-feature bounds ``[low, high]`` that clamp a network's view in evaluation mode.

    Unrecorded bounds are infinite: the identity. :meth:`record` sets them to
    the range of a set of inputs, or widens them to include it.
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("low", torch.full((n_features,), -torch.inf))
        self.register_buffer("high", torch.full((n_features,), torch.inf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return x
        return torch.clamp(x, self.low.to(x.dtype), self.high.to(x.dtype))

    def bounds(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``low`` and ``high`` as ``forward`` applies them (infinite in training mode)."""
        if self.training:
            return torch.full_like(self.low, -torch.inf, dtype=dtype), \
                torch.full_like(self.high, torch.inf, dtype=dtype)
        return self.low.to(dtype), self.high.to(dtype)

    @torch.no_grad()
    def record(self, x: torch.Tensor, widen: bool = False) -> None:
        """Set the bounds to the column-wise range of ``x`` (with ``widen``, to the
        union of that range and the current bounds)."""
        if x.shape[0] == 0:
            return
        low, high = x.amin(dim=0).to(self.low.dtype), x.amax(dim=0).to(self.high.dtype)
        if widen:
            low, high = torch.minimum(low, self.low), torch.maximum(high, self.high)
        self.low.copy_(low)
        self.high.copy_(high)
