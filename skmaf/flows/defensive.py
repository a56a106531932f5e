"""The Gaussian base with a wide defensive component: a bounded price for stray rows.

The base density is ``(1 - w) N(0, I) + w N(0, s^2 I)``, a defensive mixture
(Hesterberg, 1995): the flow's N(0, I) with a small weight ``w`` moved to a
component ``s`` times wider.

Why: a flow step divides by its conditional scale, and where a column is
nearly determined by the others (a dequantized spike, a column that copies
another) that scale is a small fraction of the column's, so a held-out row
that breaks the pattern, even inside the training range, lands far out in
the base: at ``u = -145`` on one coordinate N(0, I) charges it 10,500 nats,
the wide component ``-log w + D log s + (D / 2) log(2 pi) + |u|^2 / (2 s^2)``,
a few hundred. Where the base variables are typical the mixture costs at
most ``-log(1 - w)`` (``w`` nats) a row. The density stays exact and
normalised, and is a decreasing function of ``|u|`` alone, as N(0, I) is, so
it orders the base variables as N(0, I) does. (Not the data: the density of a
row adds the flow's log-determinant there, which varies from row to row and
now weighs more against the slower-growing ``|u|^2 / (2 s^2)``.)

What it means for the tails: along any ray that leaves the training range,
``u`` is eventually affine in the distance (:mod:`.ranges`) and the wide
component takes over, so ``log p`` is a concave quadratic with curvature
``|w_u|^2 / s^2`` (``w_u`` the map's slope) rather than ``|w_u|^2``; and at
any row ``log p(x) >= log|det du/dx| + log w - D log s - (D / 2) log(2 pi)
- |u|^2 / (2 s^2)``.

Its Rosenblatt map (:meth:`DefensiveNormal.to_standard_normal`): given the
coordinates before it, coordinate ``i`` is a mixture of N(0, 1) and N(0, s^2)
whose weights are the two components' posterior probabilities given those
coordinates, so each conditional is a two-component 1-D mixture
(:mod:`.mixture`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import BaseDistribution
from .mixture import mixture_cdf, mixture_normal_score, mixture_quantile

__all__ = ["TAIL_SCALE", "DefensiveNormal"]

#: The wide component's standard deviation, in base units: wide enough that a
#: row a hundred conditional scales off a spike pays hundreds of nats rather
#: than thousands, narrow enough that its tail is still Gaussian.
TAIL_SCALE = 10.0

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class DefensiveNormal(BaseDistribution):
    """``(1 - w) N(0, I) + w N(0, s^2 I)`` in ``n_features`` dimensions, whatever the
    context: ``w = tail_weight`` in (0, 1), ``s = tail_scale``."""

    #: Symmetric about 0 given any coordinates before, so each conditional median is 0.
    has_zero_medians = True

    def __init__(self, n_features: int, tail_weight: float, tail_scale: float = TAIL_SCALE):
        super().__init__()
        if not 0.0 < tail_weight < 1.0:
            raise ValueError(f"tail_weight must be in (0, 1), got {tail_weight!r}.")
        if not tail_scale > 0.0:
            raise ValueError(f"tail_scale must be positive, got {tail_scale!r}.")
        self.n_features = n_features
        self.tail_weight = float(tail_weight)
        self.tail_scale = float(tail_scale)

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, tail_weight={self.tail_weight}, "
                f"tail_scale={self.tail_scale}")

    def _log_weighted_components(self, squared_norm: torch.Tensor, n_coordinates
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log[(1 - w) N(v; 0, I)]`` and ``log[w N(v; 0, s^2 I)]`` for vectors ``v`` of
        ``n_coordinates`` coordinates (a number, or a tensor broadcasting with
        ``squared_norm``) with ``|v|^2 = squared_norm``: both depend on ``v``
        through its norm alone, which is what makes every conditional of the
        mixture a two-component mixture with closed-form weights."""
        narrow = (math.log1p(-self.tail_weight) - n_coordinates * _LOG_SQRT_2PI
                  - 0.5 * squared_norm)
        wide = (math.log(self.tail_weight)
                - n_coordinates * (_LOG_SQRT_2PI + math.log(self.tail_scale))
                - 0.5 * squared_norm / self.tail_scale**2)
        return narrow, wide

    def log_prob(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return torch.logaddexp(*self._log_weighted_components(u.square().sum(dim=1), u.shape[1]))

    def log_prob_and_score(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log p(u)`` per row and its gradient ``d log p / du`` (n, D), in closed form:
        ``-u * (r + (1 - r) / s^2)``, ``r`` the narrow component's posterior
        probability given the row."""
        narrow, wide = self._log_weighted_components(u.square().sum(dim=1), u.shape[1])
        narrow_share = torch.sigmoid(narrow - wide)
        precision = narrow_share * (1.0 - self.tail_scale**-2) + self.tail_scale**-2
        return torch.logaddexp(narrow, wide), -u * precision.unsqueeze(1)

    def sample(self, n: int, rng, like: torch.Tensor,
               context: torch.Tensor | None = None) -> torch.Tensor:
        noise = rng.standard_normal((n, self.n_features))
        wide = rng.uniform(size=(n, 1)) < self.tail_weight
        draws = noise * np.where(wide, self.tail_scale, 1.0)
        return torch.as_tensor(draws, dtype=like.dtype, device=like.device)

    def _conditional_mixture(self, squared_norm_before: torch.Tensor, n_before):
        """A coordinate's distribution given the ``n_before`` coordinates before it, whose
        squared norm is ``squared_norm_before``, as 1-D mixture parameters (logits,
        means, log-scales) with the components on dimension 1: the logits are the
        components' log prior weights plus the log-densities of those coordinates."""
        logits = torch.stack(self._log_weighted_components(squared_norm_before, n_before), dim=1)
        shape = [1] * logits.dim()
        shape[1] = 2
        log_scales = logits.new_tensor([0.0, math.log(self.tail_scale)]).reshape(shape)
        return logits, torch.zeros_like(logits), log_scales.expand_as(logits)

    def conditional_mixtures(self, u: torch.Tensor):
        """Every coordinate's distribution given those before it: 1-D mixture
        parameters, each (n, 2, D)."""
        squares = u.square()
        # |u_<i|^2 for every i, summed from the front (no cancellation against u_i^2).
        before = torch.cat([torch.zeros_like(squares[:, :1]),
                            torch.cumsum(squares[:, :-1], dim=1)], dim=1)
        counts = torch.arange(u.shape[1], dtype=u.dtype, device=u.device)
        return self._conditional_mixture(before, counts)

    def conditional_cdf(self, u: torch.Tensor, context: torch.Tensor | None = None
                        ) -> torch.Tensor:
        return mixture_cdf(u, *self.conditional_mixtures(u))

    def to_standard_normal(self, u: torch.Tensor, context: torch.Tensor | None = None
                           ) -> torch.Tensor:
        """The Rosenblatt map, one pass: ``Phi^-1`` of each coordinate's CDF given those
        before it; close to the identity for rows the narrow component explains
        (with ``w = 1e-4`` and D = 5, to 0.01 where every ``|u_i| < 3``), slower
        than ``u`` in the tails."""
        return mixture_normal_score(u, *self.conditional_mixtures(u))

    def from_standard_normal(self, z: torch.Tensor, context: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """The inverse of :meth:`to_standard_normal`, coordinate by coordinate, each by
        bisection of its conditional CDF given the coordinates already found."""
        u = torch.zeros_like(z)
        squared_norm_before = torch.zeros_like(z[:, 0])
        for i in range(self.n_features):
            u[:, i] = mixture_quantile(z[:, i], *self._conditional_mixture(squared_norm_before, i))
            squared_norm_before = squared_norm_before + u[:, i].square()
        return u
