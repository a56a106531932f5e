"""A float32 copy of a flow for scoring: faster, and batch-invariant on the CPU.

Scoring a flow is mostly matrix products, and a float32 product is about twice
as fast as a float64 one. But BLAS may pick another kernel, and so another
summation order, for another shape: a row scored alone would then differ from
the same row scored inside a batch by float32 rounding (up to 4e-5), where
scikit-learn's ``check_methods_subset_invariance`` allows about 1e-7.

Each row of ``x @ W.T + b`` in float32 is bit-identical whatever batch it is
in, and wherever in it, with MKL and with oneDNN on one thread, when the batch
has a multiple of 8 rows and ``W`` has one row or at least 12
(``python benchmarks/float32_invariance.py`` prints the table); torch's
element-wise ``exp``, ``tanh`` and ``log`` give the same bits at every
position too. So in the copy made here:

- linear layers with 2 to 15 outputs get zero output rows up to
  :data:`MIN_OUT_FEATURES`, and drop their outputs again;
- the caller evaluates chunks of a multiple of :data:`ROW_MULTIPLE` rows;
- the layers take float64 input as well, so the caller can evaluate the base
  density in float64 (no overflow for far-away rows).

The result is the flow's log-density up to float32 rounding (about 1e-6
relative), and the same for a row wherever it is scored. Only flows built
entirely of the reference's own module types are copied (exact types: a
subclass may compute something else), and only the density direction.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..flows import (
    MADE,
    AffineCoupling,
    BatchNorm,
    DefensiveNormal,
    Flow,
    Linear,
    MADEMoG,
    MaskedAffineAutoregressive,
    MaskedLinear,
    StandardNormal,
)
from ..flows.autoregressive import LOG_SCALE_BOUND
from ..flows.ranges import InputRange
from . import onednn
from .activations import in_place

__all__ = ["MIN_OUT_FEATURES", "ROW_MULTIPLE", "scoring_copy"]

#: Evaluate chunks whose number of rows is a multiple of this.
ROW_MULTIPLE = 8

#: Linear layers with fewer outputs (but more than one) are padded to this many.
MIN_OUT_FEATURES = 16


class _Float32Linear(nn.Module):
    """A linear layer in float32, its mask applied, narrow ones padded; takes float64 input too."""

    def __init__(self, layer: Linear):
        super().__init__()
        weight = layer.weight.detach()
        if isinstance(layer, MaskedLinear):
            weight = weight * layer.mask
        weight, bias = weight.float(), layer.bias.detach().float()
        self.out_features, in_features = weight.shape
        n_padding = MIN_OUT_FEATURES - self.out_features if self.out_features > 1 else 0
        if n_padding > 0:
            weight = torch.cat([weight, weight.new_zeros(n_padding, in_features)])
            bias = torch.cat([bias, bias.new_zeros(n_padding)])
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return onednn.linear(x.float(), self.weight, self.bias)[..., : self.out_features]


class _ScoringAffineAutoregressive(nn.Module):
    """:class:`MaskedAffineAutoregressive`'s density direction with fewer, cheaper kernels.

    The MADE's layers run as plain products, each activation in place on its
    product's output (with a ReLU, oneDNN applies it inside the product).
    ``-alpha = -B tanh(raw / B) = 2B / (exp(2 raw / B) + 1) - B``: torch's
    ``tanh`` costs several times an ``exp`` on the CPU, and the in-place steps
    allocate nothing. Saturates to ``±B`` without NaN when ``exp`` overflows.
    Unconditional MADEs only: a conditional one keeps its own forward.
    """

    def __init__(self, transform: MaskedAffineAutoregressive):
        super().__init__()
        self.made = transform.made
        self._activation = in_place(self.made.activation)
        self._relu = type(self.made.activation) is nn.ReLU

    def _made_outputs(self, x: torch.Tensor) -> torch.Tensor:
        # By now the MADE's layers are _Float32Linear (scoring_copy replaces them).
        layers = self.made.layers
        h = self.made.input_range(x.float())  # the bounded view of flows/ranges.py
        for layer in layers[:-1]:
            if self._relu:  # fused into the product where oneDNN is used
                h = onednn.linear_relu(h, layer.weight, layer.bias)[..., : layer.out_features]
            else:
                h = self._activation(
                    onednn.linear(h, layer.weight, layer.bias)[..., : layer.out_features])
        last = layers[-1]
        h = onednn.linear(h, last.weight, last.bias)[..., : last.out_features]
        return h.view(x.shape[0], self.made.n_params, self.made.n_features)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        beta, raw_log_scale = self._made_outputs(x).unbind(dim=1)
        bound = LOG_SCALE_BOUND
        minus_alpha = torch.exp(raw_log_scale * (2 / bound)).add_(1).reciprocal_()
        minus_alpha.mul_(2 * bound).sub_(bound)
        u = torch.addcmul(beta, x, torch.exp(minus_alpha))
        return u, minus_alpha.sum(dim=-1)


class _FrozenBatchNorm(nn.Module):
    """:class:`BatchNorm` with frozen statistics, its scale and log-determinant precomputed."""

    def __init__(self, batch_norm: BatchNorm):
        super().__init__()
        log_scale = batch_norm.log_gamma - 0.5 * torch.log(batch_norm.var + batch_norm.eps)
        self.register_buffer("mean", batch_norm.mean.clone())
        self.register_buffer("scale", torch.exp(log_scale))
        self.register_buffer("shift", batch_norm.beta.detach().clone())
        self.register_buffer("log_det", log_scale.sum())

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.addcmul(self.shift, torch.sub(x, self.mean), self.scale)
        return u, self.log_det.expand(x.shape[0])


def _affine_replacement(transform: MaskedAffineAutoregressive):
    if transform.made.context_layers is not None:
        return None
    return _ScoringAffineAutoregressive(transform)


#: Exact module type -> its scoring form (None: keep the module as it is).
_REPLACEMENTS = {
    Linear: _Float32Linear,
    MaskedLinear: _Float32Linear,
    MaskedAffineAutoregressive: _affine_replacement,
    BatchNorm: _FrozenBatchNorm,
}

#: Module types whose own forward is kept (their layers inside are replaced).
_KEPT = {Flow, MADE, MADEMoG, AffineCoupling, StandardNormal, DefensiveNormal, InputRange,
         nn.ModuleList, nn.Sequential, nn.ReLU, nn.Tanh}


def copies(flow: nn.Module) -> bool:
    """Whether :func:`scoring_copy` accepts ``flow``: every module of a reference type."""
    known = _KEPT | set(_REPLACEMENTS)
    return all(type(module) in known for module in flow.modules())


@torch.no_grad()
def scoring_copy(flow: nn.Module) -> nn.Module | None:
    """A float32 copy of ``flow`` for the density direction, batch-invariant on the CPU,
    or None for a flow with a module this accelerator does not know.

    Linear layers are padded as described above, and the layers with a
    cheaper evaluation-only form get it. Its layers also take float64 input,
    so the base density can be evaluated in float64 on float32 base
    variables. ``flow`` itself is left as it is.
    """
    if not copies(flow):
        return None
    evaluation = copy.deepcopy(flow).float().eval().requires_grad_(False)
    for container in list(evaluation.modules()):
        for name, child in list(container.named_children()):
            make = _REPLACEMENTS.get(type(child))
            replacement = None if make is None else make(child)
            if replacement is None:
                continue
            if isinstance(container, (nn.ModuleList, nn.Sequential)):
                container[int(name)] = replacement
            else:
                setattr(container, name, replacement)
    return evaluation
