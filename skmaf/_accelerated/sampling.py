"""Sequential sampling that computes each MADE hidden unit once, not once per input.

The reference (:meth:`skmaf.flows.MADE.sample_sequentially`) runs the whole
MADE D times to fill in D inputs. A hidden unit of degree d depends only on
the inputs that come before position d in the order, so it is final as soon
as they are: here the hidden units are sorted by degree, so that those of one
degree are a block of rows of a weight matrix and of the (transposed)
activations, and the units they depend on are a leading block of the layer
below; each block is one product over only the inputs that can be nonzero,
computed once, and drawing all D inputs costs about one forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..flows import (
    MADE,
    BaseDistribution,
    Flow,
    FlowTransform,
    MADEMoG,
    MaskedAffineAutoregressive,
)
from .activations import in_place

__all__ = ["sample_sequentially", "sampling_flow"]


@torch.no_grad()
def sample_sequentially(made: MADE, decide, n: int, like: torch.Tensor,
                        context: torch.Tensor | None = None) -> torch.Tensor:
    """What :meth:`MADE.sample_sequentially` returns, with each hidden unit computed once."""
    made.check_context(context, n)
    plan = _DegreeSortedPlan(made, context)
    x_t = like.new_zeros(made.n_features, n)  # inputs as rows: one row per decision
    # What the hidden units see: each input clamped to its recorded range
    # (flows/ranges.py), as the reference MADE's forward pass does; the inputs
    # themselves where no range bounds them (one kernel fewer per input).
    low, high = made.input_range.bounds(like.dtype)
    bounded = bool((torch.isfinite(low) | torch.isfinite(high)).any())
    low, high = low.tolist(), high.tolist()
    view_t = x_t.clone() if bounded else x_t
    hidden_t = [like.new_zeros(len(degrees), n) for degrees in made.hidden_layer_degrees]
    activation = in_place(made.activation)

    def compute_units_of_degree(degree):
        below = view_t
        for k, h_t in enumerate(hidden_t):
            start, end = plan.units[k][degree], plan.units[k][degree + 1]
            if end > start:
                n_inputs = len(below) if k == 0 else plan.units[k - 1][degree + 1]
                # Straight into the block's rows of the activations (contiguous)
                # and activated there: no temporaries.
                block = torch.addmm(plan.biases[k][start:end],
                                    plan.weights[k][start:end, :n_inputs], below[:n_inputs],
                                    out=h_t[start:end])
                if plan.context is not None:
                    block += plan.context[k][start:end]
                activation(block)
            below = h_t

    compute_units_of_degree(0)
    last = plan.units[-1]
    for position, i in enumerate(made.order.tolist()):
        # Input i has degree position + 1: it sees the units of degree <= position.
        n_inputs = last[position + 1]
        params_t = torch.addmm(plan.output_biases[i], plan.output_weights[i][:, :n_inputs],
                               hidden_t[-1][:n_inputs])
        x_t[i] = decide(i, params_t.t())
        if bounded:
            torch.clamp(x_t[i], low[i], high[i], out=view_t[i])
        compute_units_of_degree(position + 1)
    return x_t.t()


class _DegreeSortedPlan:
    """A MADE's masked weights with each hidden layer's units sorted by degree.

    ``units[k][d]`` is where the units of degree d start in layer k (the last
    entry is the layer's width); ``weights[k]`` / ``biases[k]`` map the sorted
    layer below to the sorted layer k; ``output_weights[i]`` / ``output_biases[i]``
    give input i's conditional parameters (n_params rows) from the sorted last
    layer; ``context[k]`` is the context's share of layer k's units, sorted.
    """

    def __init__(self, made: MADE, context: torch.Tensor | None):
        layers = list(made.layers)
        orders = [np.argsort(degrees, kind="stable") for degrees in made.hidden_layer_degrees]
        self.units = [np.searchsorted(degrees[order], np.arange(made.n_features + 2))
                      for degrees, order in zip(made.hidden_layer_degrees, orders)]
        self.weights, self.biases = [], []
        columns = None  # the sorted order of the layer below; None for the inputs
        for layer, order in zip(layers[:-1], orders):
            rows = torch.from_numpy(order)
            weight = (layer.weight * layer.mask)[rows]
            self.weights.append(weight if columns is None else weight[:, columns])
            self.biases.append(layer.bias[rows, None])
            columns = rows
        output = (layers[-1].weight * layers[-1].mask)[:, columns]
        rows = torch.arange(made.n_params) * made.n_features
        self.output_weights = [output[rows + i] for i in range(made.n_features)]
        self.output_biases = [layers[-1].bias[rows + i, None] for i in range(made.n_features)]
        self.context = None
        if made.context_layers is not None:
            context = made.context_range(context)
            self.context = [layer(context)[:, torch.from_numpy(order)].t()
                            for layer, order in zip(made.context_layers, orders)]


def _planned(made: MADE) -> bool:
    return type(made) is MADE and type(made.activation) in (nn.ReLU, nn.Tanh)


class _PlannedAffineAutoregressive(FlowTransform):
    """A :class:`MaskedAffineAutoregressive` (shared, not copied) whose inverse uses the plan."""

    def __init__(self, transform: MaskedAffineAutoregressive):
        super().__init__()
        self.reference = transform

    def forward(self, x, context=None):
        return self.reference(x, context)

    def inverse(self, u, context=None):
        return sample_sequentially(self.reference.made, self.reference.coordinate_from_base(u),
                                   u.shape[0], like=u, context=context)


class _PlannedMADEMoG(BaseDistribution):
    """A :class:`MADEMoG` (shared, not copied) whose sampling uses the plan."""

    def __init__(self, base: MADEMoG):
        super().__init__()
        self.reference = base

    def log_prob(self, u, context=None):
        return self.reference.log_prob(u, context)

    def sample(self, n, rng, like, context=None):
        return sample_sequentially(self.reference.made,
                                   self.reference.coordinate_draws(n, rng, like), n, like=like,
                                   context=context)


def sampling_flow(flow: nn.Module) -> Flow | None:
    """``flow`` with planned sampling wherever it has a reference MADE step or MADE MoG
    base, sharing its parameters; None where there is none, or ``flow`` is not a
    reference :class:`~skmaf.flows.Flow`."""
    if type(flow) is not Flow:
        return None
    transforms = [_PlannedAffineAutoregressive(t)
                  if type(t) is MaskedAffineAutoregressive and _planned(t.made) else t
                  for t in flow.transforms]
    base = flow.base
    if type(base) is MADEMoG and _planned(base.made):
        base = _PlannedMADEMoG(base)
    if base is flow.base and all(a is b for a, b in zip(transforms, flow.transforms)):
        return None
    return Flow(transforms, base)
