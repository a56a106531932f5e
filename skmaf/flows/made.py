"""MADE: an MLP made autoregressive by masking its weights (Germain et al., 2015).

Every input, hidden unit and output gets a *degree*. A connection from a unit of
degree ``a`` into a hidden unit of degree ``b`` is kept when ``b >= a``; into an
output of degree ``b`` only when ``b > a``. Output ``i`` then depends on the inputs
that come strictly before ``i`` in the order, so all conditionals
``p(x_i | x_<i)`` come out of one forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layers import ACTIVATIONS, MaskedLinear, in_place

__all__ = [
    "MADE",
    "hidden_degrees",
    "input_degrees",
    "made_masks",
    "make_order",
]

def make_order(order, n_features: int, generator: torch.Generator | None = None) -> np.ndarray:
    """Resolve an input-order specification into a permutation of ``range(n_features)``.

    Parameters
    ----------
    order : {"sequential", "reverse", "random"} or array-like of int
        ``"random"`` draws a permutation from ``generator``; an array must be a
        permutation of ``range(n_features)``.
    n_features : int
        Number of inputs D.
    generator : torch.Generator, optional
        Source of randomness for ``"random"``.

    Returns
    -------
    order : ndarray of shape (n_features,)
        ``order[k]`` is the input that comes k-th in the autoregressive order.
    """
    if isinstance(order, str):
        if order == "sequential":
            return np.arange(n_features)
        if order == "reverse":
            return np.arange(n_features)[::-1].copy()
        if order == "random":
            return torch.randperm(n_features, generator=generator).numpy()
        raise ValueError(
            f"input_order must be 'sequential', 'reverse', 'random' or a permutation, "
            f"got {order!r}."
        )
    permutation = np.asarray(order)
    if (
        permutation.ndim != 1
        or permutation.dtype.kind not in "iu"
        or not np.array_equal(np.sort(permutation), np.arange(n_features))
    ):
        raise ValueError(
            f"input_order must be a permutation of range({n_features}) for data with "
            f"{n_features} features, got {order!r}."
        )
    return permutation.astype(np.int64)


def input_degrees(order: np.ndarray) -> np.ndarray:
    """Degree of each input: 1 + its position in ``order``."""
    degrees = np.empty(len(order), dtype=np.int64)
    degrees[order] = np.arange(1, len(order) + 1)
    return degrees


def hidden_degrees(n_features: int, n_units: int, conditional: bool = False) -> np.ndarray:
    """Degrees of one hidden layer, cycling through ``1 .. D-1``.

    Cycling (rather than sampling) gives every degree the same number of units
    and leaves no unit dead: a unit of degree ``b`` in ``[1, D-1]`` always has an
    input of degree 1 below it and an output of degree D above it. With D = 1
    there is no valid degree; the units get degree 0, see no input, and the
    MADE reduces to an element-wise affine map with learned constants.

    A ``conditional`` MADE cycles through ``0 .. D-1`` instead: its degree-0
    units see only the context, which is what lets the first conditional
    ``p(x_1 | context)`` depend on the context.
    """
    lowest = 0 if conditional or n_features == 1 else 1
    return lowest + np.arange(n_units, dtype=np.int64) % (n_features - lowest)


def made_masks(
    order: np.ndarray, n_hidden_layers: int, n_hidden_units: int, conditional: bool = False
) -> list[np.ndarray]:
    """Connectivity masks of a MADE, each of shape (out_features, in_features).

    The last mask maps the final hidden layer to the D outputs, one per input,
    with output ``i`` carrying the degree of input ``i``.
    """
    n_features = len(order)
    degrees_in = input_degrees(order)
    masks = []
    previous = degrees_in
    for _ in range(n_hidden_layers):
        current = hidden_degrees(n_features, n_hidden_units, conditional)
        masks.append(current[:, None] >= previous[None, :])
        previous = current
    masks.append(degrees_in[:, None] > previous[None, :])
    return masks


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation.

    Parameters
    ----------
    n_features : int
        Number of inputs D.
    n_hidden_layers, n_hidden_units : int
        The paper's L and H.
    n_params : int
        Outputs per input: 2 for a Gaussian MAF step (beta, alpha), 3C for a
        mixture of C Gaussians.
    order : ndarray of shape (n_features,)
        Autoregressive order, as returned by :func:`make_order`.
    activation : {"relu", "tanh"}
    n_context_features : int, default=0
        Width of an optional conditioning input. It feeds every first-layer
        hidden unit through an unmasked linear map, which keeps the outputs
        autoregressive in x (a conditional MADE).
    generator : torch.Generator, optional
        Source of the initial weights.

    The forward pass returns a tensor of shape (n, n_params, D): entry
    ``[:, p, i]`` is parameter p of the conditional of input i.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden_layers: int,
        n_hidden_units: int,
        n_params: int,
        order: np.ndarray,
        activation: str = "relu",
        n_context_features: int = 0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.n_features = n_features
        self.n_params = n_params
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
        masks = made_masks(
            np.asarray(order), n_hidden_layers, n_hidden_units, conditional=n_context_features > 0
        )
        # Each output degree is repeated once per conditional parameter.
        masks[-1] = np.tile(masks[-1], (n_params, 1))
        self.layers = nn.ModuleList(MaskedLinear(mask, generator) for mask in masks)
        self.activation = ACTIVATIONS[activation]()
        # For sequential evaluation (sampling): the degrees of each hidden layer.
        self._hidden_degrees = [hidden_degrees(n_features, n_hidden_units,
                                               n_context_features > 0)] * len(masks[:-1])
        self.context = None
        if n_context_features:
            self.context = MaskedLinear(
                np.ones((n_hidden_units, n_context_features), dtype=bool), generator
            )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.layers[0](x)
        if self.context is not None:
            if context is None:
                raise ValueError("This MADE was built with a context input; pass context=.")
            h = h + self.context(context)
        for layer in self.layers[1:]:
            h = layer(self.activation(h))
        return h.view(x.shape[0], self.n_params, self.n_features)

    @torch.no_grad()
    def sample_sequentially(self, decide, n: int, like: torch.Tensor,
                            context: torch.Tensor | None = None) -> torch.Tensor:
        """Fill in ``x`` one input at a time in the autoregressive order.

        ``decide(i, params)`` receives the conditional parameters of input ``i``
        (shape ``(n, n_params)``) and returns its values ``(n,)``. Each hidden
        unit is computed exactly once, as soon as every input it depends on is
        final, so drawing all D inputs costs about one forward pass, not D.

        The hidden units are sorted by degree, so that those of one degree are
        a block of rows of a weight matrix and of the (transposed) activations,
        and the units they depend on are a leading block of the layer below:
        each block is one product over only the inputs that can be nonzero.
        The inputs are filled in place, so the result carries no gradient.
        """
        plan = _DegreeSortedPlan(self, context)
        x_t = like.new_zeros(self.n_features, n)  # inputs as rows: one row per decision
        hidden_t = [like.new_zeros(len(degrees), n) for degrees in self._hidden_degrees]
        activation = in_place(self.activation)

        def compute_units_of_degree(degree):
            below = x_t
            for k, h_t in enumerate(hidden_t):
                start, end = plan.units[k][degree], plan.units[k][degree + 1]
                if end > start:
                    n_inputs = len(below) if k == 0 else plan.units[k - 1][degree + 1]
                    # Straight into the block's rows of the activations (contiguous)
                    # and activated there: no temporaries, which at 2048 samples
                    # are megabytes each.
                    block = torch.addmm(plan.biases[k][start:end],
                                        plan.weights[k][start:end, :n_inputs], below[:n_inputs],
                                        out=h_t[start:end])
                    if k == 0 and plan.context is not None:
                        block += plan.context[start:end]
                    activation(block)
                below = h_t

        compute_units_of_degree(0)
        last = plan.units[-1]
        for position, i in enumerate(self.order.tolist()):
            # Input i has degree position + 1: it sees the units of degree <= position.
            n_inputs = last[position + 1]
            params_t = torch.addmm(plan.output_biases[i], plan.output_weights[i][:, :n_inputs],
                                   hidden_t[-1][:n_inputs])
            x_t[i] = decide(i, params_t.t())
            compute_units_of_degree(position + 1)
        return x_t.t()


class _DegreeSortedPlan:
    """A MADE's weights with each hidden layer's units sorted by degree (for sampling).

    ``units[k][d]`` is where the units of degree d start in layer k (the last
    entry is the layer's width); ``weights[k]`` / ``biases[k]`` map the sorted
    layer below to the sorted layer k; ``output_weights[i]`` / ``output_biases[i]``
    give input i's conditional parameters (n_params rows) from the sorted last layer.
    """

    def __init__(self, made: MADE, context: torch.Tensor | None):
        layers = list(made.layers)
        orders = [np.argsort(degrees, kind="stable") for degrees in made._hidden_degrees]
        self.units = [np.searchsorted(degrees[order], np.arange(made.n_features + 2))
                      for degrees, order in zip(made._hidden_degrees, orders)]
        self.weights, self.biases = [], []
        columns = None  # the sorted order of the layer below; None for the inputs
        for layer, order in zip(layers[:-1], orders):
            rows = torch.from_numpy(order)
            weight = layer.weight[rows]
            self.weights.append(weight if columns is None else weight[:, columns])
            self.biases.append(layer.bias[rows, None])
            columns = rows
        output = layers[-1].weight[:, columns]
        rows = torch.arange(made.n_params) * made.n_features
        self.output_weights = [output[rows + i] for i in range(made.n_features)]
        self.output_biases = [layers[-1].bias[rows + i, None] for i in range(made.n_features)]
        self.context = None
        if made.context is not None:
            if context is None:
                raise ValueError("This MADE was built with a context input; pass context=.")
            self.context = made.context(context)[:, torch.from_numpy(orders[0])].t()
