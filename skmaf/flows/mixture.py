"""MADE MoG: a MADE whose conditionals are mixtures of Gaussians (MAF paper, section 3.3)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .autoregressive import soft_clamp
from .base import BaseDistribution
from .made import MADE

__all__ = ["MADEMoG", "mixture_log_prob"]


def mixture_log_prob(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                     log_scales: torch.Tensor) -> torch.Tensor:
    """Per-dimension log-density of 1-D Gaussian mixtures.

    ``x`` is (n, D); the mixture parameters are (n, C, D). Returns (n, D):
    ``log sum_c softmax(logits)_c N(x; mean_c, exp(log_scale_c)^2)``, by
    log-sum-exp so that no component's density has to be representable.
    """
    log_weights = torch.log_softmax(logits, dim=1)
    z = (x.unsqueeze(1) - means) * torch.exp(-log_scales)
    log_components = -0.5 * z.square() - log_scales - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_weights + log_components, dim=1)


class MADEMoG(BaseDistribution):
    """``p(x) = prod_i sum_c w_ic N(x_i; m_ic, s_ic^2)``, all of ``w, m, s`` from one MADE.

    The MADE has ``3 C`` outputs per input: mixture logits, means and log-scales
    (the latter soft-clamped as in the Gaussian MADE). With C = 1 the logit
    would be constant under the softmax, so it is left out and the model is
    exactly the paper's Gaussian MADE. Density: one pass. Sampling: D passes,
    each drawing one more coordinate in the order.
    """

    def __init__(self, n_features: int, n_hidden_layers: int, n_hidden_units: int,
                 n_components: int, order: np.ndarray, activation: str = "relu",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_components = n_components
        n_params = 3 * n_components if n_components > 1 else 2
        self.made = MADE(n_features, n_hidden_layers, n_hidden_units, n_params,
                         order=order, activation=activation, generator=generator)

    def mixture_parameters(self, x: torch.Tensor):
        """Logits, means and log-scales, each of shape (n, C, D)."""
        return self._split(self.made(x))

    def _split(self, out: torch.Tensor):
        if self.n_components == 1:
            means, raw_log_scales = out.chunk(2, dim=1)
            return torch.zeros_like(means), means, soft_clamp(raw_log_scales)
        logits, means, raw_log_scales = out.chunk(3, dim=1)
        return logits, means, soft_clamp(raw_log_scales)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return mixture_log_prob(x, *self.mixture_parameters(x)).sum(dim=-1)

    def sample(self, n: int, rng, like: torch.Tensor) -> torch.Tensor:
        n_features = self.made.n_features
        to_tensor = lambda a: torch.as_tensor(a, dtype=like.dtype, device=like.device)  # noqa: E731
        noise = to_tensor(rng.standard_normal((n, n_features)))
        uniform = to_tensor(rng.uniform(size=(n, 1, n_features)))

        def decide(i, params):
            logits, means, log_scales = self._split(params[:, :, None])
            # Inverse-CDF choice of the component: the first whose cumulative
            # weight exceeds the uniform draw.
            cumulative = torch.softmax(logits[:, :, 0], dim=1).cumsum(dim=1)
            component = (cumulative < uniform[:, :, i]).sum(dim=1, keepdim=True)
            component = component.clamp(max=self.n_components - 1)
            mean = means[:, :, 0].gather(1, component)[:, 0]
            scale = log_scales[:, :, 0].gather(1, component)[:, 0].exp()
            return mean + scale * noise[:, i]

        return self.made.sample_sequentially(decide, n, like=like)
