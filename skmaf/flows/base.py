"""The protocol shared by every flow layer, the standard normal base, and the flow.

Direction convention (the paper's): ``forward`` maps data x to base variables u
and returns ``log|det du/dx|`` per row, which is what density evaluation needs;
``inverse`` maps u back to x, which is what sampling needs.

Every map and density takes an optional ``context``: a tensor of shape
``(n, n_context_features)``, one conditioning vector per row, that a
conditional layer (a MADE built with ``n_context_features > 0``) feeds to its
networks, so that the flow is a density ``p(x | context)``. Layers that do not
depend on it (batch norm, the standard normal base) ignore it, and an
unconditional flow is used with ``context=None`` throughout.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..exceptions import InverseNotAvailable

__all__ = ["BaseDistribution", "Flow", "FlowTransform", "InverseNotAvailable", "StandardNormal"]


class FlowTransform(nn.Module):
    """A bijection with a tractable Jacobian determinant, optionally conditioned on a context.

    Subclasses implement ``forward(x, context=None) -> (u, log|det du/dx|)`` and
    ``inverse(u, context=None) -> x``. Transforms whose evaluation depends on
    their training inputs (batch norm's moments, a conditioner's input range)
    set ``has_statistics`` and override :meth:`freeze_statistics`; those with
    an input range also override :meth:`widen_input_range`.
    """

    has_statistics = False

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise InverseNotAvailable(f"{type(self).__name__} has no inverse.")

    def freeze_statistics(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Fix evaluation-time statistics from the whole input set ``x``; no-op by default."""

    def widen_input_range(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Widen the conditioners' input range to include ``x``; no-op by default."""

    def update_running_statistics(self, x: torch.Tensor, momentum: float) -> None:
        """Move running evaluation statistics towards those of the minibatch ``x``
        (``partial_fit``); no-op by default."""


class BaseDistribution(nn.Module):
    """The density of the base variables u, optionally conditioned on a context.

    ``sample`` draws its noise from a NumPy random state, so that a seed gives
    the same samples on every device.
    """

    #: Whether each coordinate's median given those before it is 0, so that the
    #: flow's sequential median is the image of ``u = 0``.
    has_zero_medians = False

    #: Whether it conditions on its input through a network whose view is bounded
    #: to the training range (:mod:`.ranges`), set by :meth:`freeze_statistics`.
    has_statistics = False

    def freeze_statistics(self, u: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Fix evaluation-time statistics from the whole set ``u``; no-op by default."""

    def widen_input_range(self, u: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Widen the input range to include ``u``; no-op by default."""

    def log_prob(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, rng, like: torch.Tensor,
               context: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` rows using ``rng``, with the dtype and device of ``like``;
        row ``i`` conditioned on ``context[i]`` when a context is given."""
        raise NotImplementedError

    def conditional_cdf(self, u: torch.Tensor, context: torch.Tensor | None = None
                        ) -> torch.Tensor:
        """``F_i(u_i | u_<i, context)`` for every coordinate, shape (n, D): each
        coordinate's CDF given those before it in the order (for one feature,
        the CDF)."""
        raise NotImplementedError

    def to_standard_normal(self, u: torch.Tensor, context: torch.Tensor | None = None
                           ) -> torch.Tensor:
        """A bijection onto N(0, I) under this density (the Rosenblatt map, or the
        identity for N(0, I) itself), shape (n, D)."""
        raise NotImplementedError

    def from_standard_normal(self, z: torch.Tensor, context: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """The inverse of :meth:`to_standard_normal`."""
        raise NotImplementedError


class StandardNormal(BaseDistribution):
    """N(0, I) in ``n_features`` dimensions, whatever the context."""

    has_zero_medians = True

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features

    def log_prob(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return -0.5 * (u.square().sum(dim=-1) + self.n_features * math.log(2 * math.pi))

    def sample(self, n: int, rng, like: torch.Tensor,
               context: torch.Tensor | None = None) -> torch.Tensor:
        noise = rng.standard_normal((n, self.n_features))
        return torch.as_tensor(noise, dtype=like.dtype, device=like.device)

    def conditional_cdf(self, u: torch.Tensor, context: torch.Tensor | None = None
                        ) -> torch.Tensor:
        return torch.special.ndtr(u)

    def to_standard_normal(self, u: torch.Tensor, context: torch.Tensor | None = None
                           ) -> torch.Tensor:
        return u

    def from_standard_normal(self, z: torch.Tensor, context: torch.Tensor | None = None
                             ) -> torch.Tensor:
        return z


class Flow(nn.Module):
    """A density model: ``transforms`` applied in order, then ``base``.

    ``log p(x | c) = log p_base(u | c) + sum_k log|det du_k/du_{k-1}|``, with
    ``c`` the context (None for an unconditional flow). With no transforms it
    is just the base density (e.g. a MADE MoG).
    """

    def __init__(self, transforms: list[FlowTransform], base: BaseDistribution):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)
        self.base = base

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data to base variables; return ``(u, log|det du/dx|)``."""
        log_det = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, step_log_det = transform(x, context)
            log_det = log_det + step_log_det
        return x, log_det

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        u, log_det = self(x, context)
        return self.base.log_prob(u, context) + log_det

    def to_base(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self(x, context)[0]

    def from_base(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        for transform in reversed(self.transforms):
            u = transform.inverse(u, context)
        return u

    def sample(self, n: int, rng, context: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` draws; with a context (``n`` rows), draw ``i`` is conditioned on row ``i``."""
        if context is not None and context.shape[0] != n:
            raise ValueError(f"context has {context.shape[0]} rows for {n} samples.")
        reference = next(self.parameters())
        return self.from_base(self.base.sample(n, rng, like=reference, context=context), context)

    @torch.no_grad()
    def freeze_statistics(self, x: torch.Tensor, context: torch.Tensor | None = None,
                          chunk_size: int = 8192) -> None:
        """Set every layer's evaluation statistics from the whole set ``x``: batch
        norm's moments and the conditioners' input ranges (:mod:`.ranges`).

        Layer k's statistics are those of its input, which depends on the frozen
        statistics of layers before it, so the set is pushed through layer by
        layer, in chunks (on the model's device) to bound the activation memory.
        Leaves the model in evaluation mode.
        """
        self.eval()
        self._visit_layer_inputs(x, context, chunk_size, lambda layer, x, c:
                                 layer.freeze_statistics(x, c))

    @torch.no_grad()
    def widen_input_ranges(self, x: torch.Tensor, context: torch.Tensor | None = None,
                           chunk_size: int = 8192) -> None:
        """Widen every conditioner's input range to include the rows ``x`` (for
        training in chunks, where no whole training set is ever seen). Leaves the
        model in evaluation mode."""
        self.eval()
        self._visit_layer_inputs(x, context, chunk_size, lambda layer, x, c:
                                 layer.widen_input_range(x, c))

    def _visit_layer_inputs(self, x, context, chunk_size, visit) -> None:
        """Call ``visit(layer, its input, context)`` for every layer with
        statistics, in order, pushing ``x`` through the transforms as far as needed."""
        layers = [*self.transforms, self.base]
        stateful = [k for k, layer in enumerate(layers) if layer.has_statistics]
        if not stateful:
            return
        device = next(self.parameters()).device
        for k, layer in enumerate(layers[: stateful[-1] + 1]):
            if layer.has_statistics:
                visit(layer, x, context)
            if k == stateful[-1]:
                break
            contexts = itertools.repeat(None) if context is None else context.split(chunk_size)
            x = torch.cat([
                layer(chunk.to(device), None if c is None else c.to(device))[0].to(x.device)
                for chunk, c in zip(x.split(chunk_size), contexts)
            ])
