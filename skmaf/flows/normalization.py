"""Batch normalisation as a flow layer (MAF paper, appendix B)."""

from __future__ import annotations

import torch
from torch import nn

from .base import FlowTransform

__all__ = ["BatchNorm"]


class BatchNorm(FlowTransform):
    """``u = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta``.

    As in appendix B of the MAF paper: gamma is exponentiated (so it stays
    positive and the map stays invertible); in training mode ``m`` and ``v``
    are the minibatch mean and (biased) variance; in evaluation mode they are
    the whole-training-set statistics set by :meth:`freeze_statistics`, not a
    running average, so evaluation does not depend on the order of training
    batches and a row scores the same alone as inside a batch. The context of a
    conditional flow does not enter it.
    """

    has_statistics = True

    def __init__(self, n_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(n_features))
        self.beta = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("var", torch.ones(n_features))

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            # Biased variance: the unbiased one of a one-row batch is NaN.
            var, mean = torch.var_mean(x, dim=0, correction=0)
            return mean, var
        return self.mean, self.var

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._statistics(x)
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        u = (x - mean) * torch.exp(log_scale) + self.beta
        return u, log_scale.sum().expand(x.shape[0])

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # Sampling is only defined with frozen statistics: a batch-statistics
        # inverse would need the statistics of the very x it is computing.
        log_scale = self.log_gamma - 0.5 * torch.log(self.var + self.eps)
        return (u - self.beta) * torch.exp(-log_scale) + self.mean

    @torch.no_grad()
    def update_running_statistics(self, x: torch.Tensor, momentum: float) -> None:
        """``statistic = momentum * minibatch's + (1 - momentum) * statistic``."""
        var, mean = torch.var_mean(x.detach().double(), dim=0, correction=0)
        self.mean.lerp_(mean.to(self.mean.dtype), momentum)
        self.var.lerp_(var.to(self.var.dtype), momentum)

    @torch.no_grad()
    def freeze_statistics(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        # float64 accumulation: a float32 variance over a million rows loses digits.
        # Two passes, the mean and then the mean square about it, as var_mean does.
        x = x.double()
        mean = x.mean(dim=0)
        self.mean.copy_(mean)
        self.var.copy_((x - mean).square_().mean(dim=0))
