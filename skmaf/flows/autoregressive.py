"""The Gaussian MADE as a bijection: MAF's building block."""

from __future__ import annotations

import torch

from .base import FlowTransform
from .made import MADE

__all__ = ["LOG_SCALE_BOUND", "MaskedAffineAutoregressive", "soft_clamp"]

#: Bound on the log-scale of each affine step (the paper's alpha). exp(alpha)
#: overflows float32 at alpha > 88, and a single spiky minibatch early in
#: training can push an unbounded alpha there. A smooth tanh clamp at ±7 keeps
#: every step's scale within exp(±7) ≈ [1e-3, 1e3] (zuko's choice too), is the
#: identity to within 1% for |alpha| < 1.2, and bounds the log-determinant, so
#: densities stay finite even on degenerate (constant) columns. A K-layer flow
#: still reaches scales of exp(±7K).
LOG_SCALE_BOUND = 7.0


def soft_clamp(x: torch.Tensor, bound: float = LOG_SCALE_BOUND) -> torch.Tensor:
    """Smoothly squash ``x`` into ``(-bound, bound)``: ``bound * tanh(x / bound)``."""
    return bound * torch.tanh(x / bound)


class MaskedAffineAutoregressive(FlowTransform):
    """``u_i = (x_i - mu_i) * exp(-alpha_i)``, mu and alpha functions of ``x_<i``
    (and of the context): the MAF paper's Gaussian MADE step.

    The MADE's two outputs per input are the shift ``beta_i`` of u and the raw
    log-scale; ``alpha_i = soft_clamp(raw_i)`` and ``mu_i = -beta_i * exp(alpha_i)``,
    so that ``u_i = x_i * exp(-alpha_i) + beta_i``: the paper's map, the same
    family of flows and the same exact density, with the shift of ``u`` rather
    than ``mu`` as the network's output, as nflows and zuko have it (it trains
    better; benchmarks/README.md).

    Density direction: one MADE pass, ``log|det du/dx| = -sum_i alpha_i``.
    Sampling direction: D sequential steps, each fixing one more coordinate in
    the order. Beyond the range of its training inputs, recorded by
    :meth:`freeze_statistics`, the step is affine (:mod:`.ranges`).
    """

    has_statistics = True

    def __init__(self, made: MADE):
        super().__init__()
        if made.n_params != 2:
            raise ValueError("A Gaussian MADE needs n_params=2 (shift and log-scale).")
        self.made = made

    def freeze_statistics(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self.made.record_input_range(x, context)

    def widen_input_range(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self.made.record_input_range(x, context, widen=True)

    def shift_and_log_scale(self, x: torch.Tensor, context: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``beta`` and ``alpha`` of every coordinate, each of shape (n, D)."""
        beta, raw_log_scale = self.made(x, context).unbind(dim=1)
        return beta, soft_clamp(raw_log_scale)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        beta, log_scale = self.shift_and_log_scale(x, context)
        return x * torch.exp(-log_scale) + beta, -log_scale.sum(dim=-1)

    def coordinate_from_base(self, u: torch.Tensor):
        """``decide(i, params)`` for :meth:`MADE.sample_sequentially`: ``x_i`` from ``u_i``."""

        def decide(i, params):
            beta, raw_log_scale = params.unbind(dim=1)
            return (u[:, i] - beta) * torch.exp(soft_clamp(raw_log_scale))

        return decide

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.made.sample_sequentially(self.coordinate_from_base(u), u.shape[0], like=u,
                                             context=context)
