"""MADE MoG: a MADE whose conditionals are mixtures of Gaussians (MAF paper, section 3.3)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .autoregressive import soft_clamp
from .base import BaseDistribution
from .made import MADE

__all__ = ["MADEMoG", "mixture_cdf", "mixture_log_prob", "mixture_normal_score",
           "mixture_quantile", "normal_quantile_of_log"]

#: Bisection steps of the inverse Rosenblatt map: each halves the bracket, which
#: starts at most a few thousand component scales wide, so 100 reach float64's
#: resolution everywhere.
INVERSE_BISECTION_STEPS = 100

#: Below this log-probability ``exp`` underflows float64 and the normal quantile is
#: found from its asymptotic expansion and Newton steps on ``log_ndtr`` instead.
SMALLEST_LOG_PROBABILITY = -700.0


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


def mixture_cdf(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                log_scales: torch.Tensor) -> torch.Tensor:
    """Per-dimension CDF of 1-D Gaussian mixtures: ``x`` (n, D), parameters (n, C, D),
    result (n, D): ``sum_c softmax(logits)_c Phi((x - mean_c) / exp(log_scale_c))``."""
    weights = torch.softmax(logits, dim=1)
    return (weights * torch.special.ndtr((x.unsqueeze(1) - means)
                                         * torch.exp(-log_scales))).sum(dim=1)


def normal_quantile_of_log(log_p: torch.Tensor) -> torch.Tensor:
    """``Phi^-1(exp(log_p))`` for ``log_p <= log(1/2)``, without underflow.

    Where ``exp(log_p)`` is representable, ``ndtri`` of it; below, the
    asymptotic ``-sqrt(-2 l - log(-2 l) - log(2 pi))`` refined by Newton steps
    on ``log_ndtr(z) = l``, whose slope is ``phi(z) / Phi(z)``.
    """
    direct = torch.special.ndtri(torch.exp(log_p.clamp(min=SMALLEST_LOG_PROBABILITY)))
    far = log_p < SMALLEST_LOG_PROBABILITY
    if not bool(far.any()):
        return direct
    minus_two_l = -2.0 * log_p[far]
    z = -torch.sqrt(minus_two_l - torch.log(minus_two_l) - math.log(2 * math.pi))
    for _ in range(4):
        log_phi = -0.5 * z.square() - 0.5 * math.log(2 * math.pi)
        z = z - (torch.special.log_ndtr(z) - log_p[far]) * torch.exp(
            torch.special.log_ndtr(z) - log_phi)
    return direct.masked_scatter(far, z)


def mixture_normal_score(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                         log_scales: torch.Tensor) -> torch.Tensor:
    """``Phi^-1(F(x))`` per dimension, ``F`` the 1-D Gaussian mixture's CDF: ``x`` (n, D),
    parameters (n, C, D), result (n, D).

    From ``log F`` below the median and ``log(1 - F)`` above it, each a
    log-sum-exp of ``log_ndtr``, so that neither tail rounds to 0 or 1: the
    score stays exact and strictly increasing in ``x`` however far out.
    """
    log_weights = torch.log_softmax(logits, dim=1)
    z = (x.unsqueeze(1) - means) * torch.exp(-log_scales)
    log_cdf = torch.logsumexp(log_weights + torch.special.log_ndtr(z), dim=1)
    log_survival = torch.logsumexp(log_weights + torch.special.log_ndtr(-z), dim=1)
    # Phi^-1(F) = -Phi^-1(1 - F): the quantile of the smaller tail, signed.
    quantile = normal_quantile_of_log(torch.minimum(log_cdf, log_survival))
    return torch.where(log_cdf <= log_survival, quantile, -quantile)


def mixture_quantile(score: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                      log_scales: torch.Tensor) -> torch.Tensor:
    """The ``x`` (n,) with ``mixture_normal_score(x) = score`` (n,), parameters (n, C),
    by bisection: the score is strictly increasing, and at ``score`` plus one component
    scales below every component's mean (above, for the upper end) the mixture's CDF
    is below (above) ``Phi(score)``. (Not :func:`skmaf._quantiles.invert_increasing`,
    the estimators' NumPy search: this one stays on the model's device and, with its
    bracket known in advance, needs no widening, and halves it to float64's resolution
    rather than to a fixed tolerance, which a round trip of large values needs.)"""
    scales = torch.exp(log_scales)
    reach = (score.abs() + 1.0).unsqueeze(1) * scales
    low = (means - reach).min(dim=1).values
    high = (means + reach).max(dim=1).values
    params = (logits.unsqueeze(2), means.unsqueeze(2), log_scales.unsqueeze(2))
    for _ in range(INVERSE_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        below = mixture_normal_score(middle.unsqueeze(1), *params)[:, 0] < score
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    return 0.5 * (low + high)


class MADEMoG(BaseDistribution):
    """``p(x | c) = prod_i sum_k w_ik N(x_i; m_ik, s_ik^2)``, all of ``w, m, s`` from one MADE.

    The MADE has ``3 C`` outputs per input: mixture logits, means and log-scales
    (the latter soft-clamped as in the Gaussian MADE). With C = 1 the logit
    would be constant under the softmax, so it is left out and the model is
    exactly the paper's Gaussian MADE. Density: one pass. Sampling: D passes,
    each drawing one more coordinate in the order. With ``n_context_features``
    the MADE also sees a context ``c``. Beyond the range of the inputs recorded
    by :meth:`freeze_statistics` the mixture parameters stay those of the
    nearest point of that range (:mod:`.ranges`).
    """

    has_statistics = True

    def __init__(self, n_features: int, n_hidden_layers: int, n_hidden_units: int,
                 n_components: int, order: np.ndarray, activation: str = "relu",
                 n_context_features: int = 0, generator: torch.Generator | None = None):
        super().__init__()
        self.n_components = n_components
        n_params = 3 * n_components if n_components > 1 else 2
        self.made = MADE(n_features, n_hidden_layers, n_hidden_units, n_params, order=order,
                         activation=activation, n_context_features=n_context_features,
                         generator=generator)

    def freeze_statistics(self, u: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self.made.record_input_range(u, context)

    def widen_input_range(self, u: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self.made.record_input_range(u, context, widen=True)

    def mixture_parameters(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """Logits, means and log-scales, each of shape (n, C, D)."""
        return self.split(self.made(x, context))

    def split(self, out: torch.Tensor):
        """The MADE's outputs (n, n_params, ...) as logits, means and clamped log-scales."""
        if self.n_components == 1:
            means, raw_log_scales = out.chunk(2, dim=1)
            return torch.zeros_like(means), means, soft_clamp(raw_log_scales)
        logits, means, raw_log_scales = out.chunk(3, dim=1)
        return logits, means, soft_clamp(raw_log_scales)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return mixture_log_prob(x, *self.mixture_parameters(x, context)).sum(dim=-1)

    def conditional_cdf(self, x: torch.Tensor, context: torch.Tensor | None = None
                        ) -> torch.Tensor:
        """Each coordinate's mixture CDF given those before it, shape (n, D)."""
        return mixture_cdf(x, *self.mixture_parameters(x, context))

    def to_standard_normal(self, x: torch.Tensor, context: torch.Tensor | None = None
                           ) -> torch.Tensor:
        """The Rosenblatt map: ``Phi^-1`` of each coordinate's CDF given those before it,
        one pass; under the model its rows are i.i.d. N(0, I)."""
        return mixture_normal_score(x, *self.mixture_parameters(x, context))

    def from_standard_normal(self, z: torch.Tensor, context: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """The inverse of :meth:`to_standard_normal`: D passes, each coordinate found by
        bisection of its conditional CDF given the coordinates already found."""

        def decide(i, params):
            logits, means, log_scales = (part[:, :, 0] for part in self.split(params[:, :, None]))
            return mixture_quantile(z[:, i], logits, means, log_scales)

        return self.made.sample_sequentially(decide, z.shape[0], like=z, context=context)

    def coordinate_draws(self, n: int, rng, like: torch.Tensor):
        """``decide(i, params)`` for :meth:`MADE.sample_sequentially`: ``x_i`` drawn from
        its mixture, with all the noise taken from ``rng`` up front."""
        n_features = self.made.n_features
        to_tensor = lambda a: torch.as_tensor(a, dtype=like.dtype, device=like.device)  # noqa: E731
        noise = to_tensor(rng.standard_normal((n, n_features)))
        uniform = to_tensor(rng.uniform(size=(n, 1, n_features)))

        def decide(i, params):
            logits, means, log_scales = self.split(params[:, :, None])
            # Inverse-CDF choice of the component: the first whose cumulative
            # weight exceeds the uniform draw.
            cumulative = torch.softmax(logits[:, :, 0], dim=1).cumsum(dim=1)
            component = (cumulative < uniform[:, :, i]).sum(dim=1, keepdim=True)
            component = component.clamp(max=self.n_components - 1)
            mean = means[:, :, 0].gather(1, component)[:, 0]
            scale = log_scales[:, :, 0].gather(1, component)[:, 0].exp()
            return mean + scale * noise[:, i]

        return decide

    def sample(self, n: int, rng, like: torch.Tensor,
               context: torch.Tensor | None = None) -> torch.Tensor:
        return self.made.sample_sequentially(self.coordinate_draws(n, rng, like), n, like=like,
                                             context=context)
