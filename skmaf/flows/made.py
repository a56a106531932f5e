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

from .layers import ACTIVATIONS, Linear, MaskedLinear
from .ranges import InputRange

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
    """Masked autoencoder for distribution estimation, optionally conditional.

    Parameters
    ----------
    n_features : int
        Number of inputs D.
    n_hidden_layers, n_hidden_units : int
        The paper's L and H.
    n_params : int
        Outputs per input: 2 for a Gaussian MAF step (shift and log-scale),
        3C for a mixture of C Gaussians.
    order : ndarray of shape (n_features,)
        Autoregressive order, as returned by :func:`make_order`.
    activation : {"relu", "tanh"}
    n_context_features : int, default=0
        Width of an optional conditioning input (the paper's section 4.4). It
        feeds every hidden layer through an unmasked linear map: the context is
        visible to every conditional, and the outputs stay autoregressive in x.
    generator : torch.Generator, optional
        Source of the initial weights.

    The forward pass returns a tensor of shape (n, n_params, D): entry
    ``[:, p, i]`` is parameter p of the conditional of input i. In evaluation
    mode the network sees its inputs (and context) clamped to the ranges set by
    :meth:`record_input_range` (:mod:`.ranges`: the flow's tails).
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
        self.n_context_features = n_context_features
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
        conditional = n_context_features > 0
        masks = made_masks(np.asarray(order), n_hidden_layers, n_hidden_units, conditional)
        # Each output degree is repeated once per conditional parameter.
        masks[-1] = np.tile(masks[-1], (n_params, 1))
        self.layers = nn.ModuleList(MaskedLinear(mask, generator) for mask in masks)
        self.activation = ACTIVATIONS[activation]()
        #: The degrees of each hidden layer's units (what sequential evaluation needs).
        self.hidden_layer_degrees = [hidden_degrees(n_features, n_hidden_units, conditional)
                                     for _ in range(n_hidden_layers)]
        self.input_range = InputRange(n_features)
        self.context_layers = self.context_range = None
        if conditional:
            self.context_layers = nn.ModuleList(
                Linear(n_context_features, n_hidden_units, generator)
                for _ in range(n_hidden_layers)
            )
            self.context_range = InputRange(n_context_features)

    def record_input_range(self, x: torch.Tensor, context: torch.Tensor | None = None,
                           widen: bool = False) -> None:
        """Bound the network's view to the range of ``x`` (and of ``context``)."""
        self.input_range.record(x, widen)
        if self.context_range is not None and context is not None:
            self.context_range.record(context, widen)

    def check_context(self, context: torch.Tensor | None, n_rows: int) -> None:
        """Raise ``ValueError`` unless ``context`` is what this MADE was built for."""
        if self.context_layers is None:
            if context is not None:
                raise ValueError("This MADE was built without a context input; "
                                 "pass context=None.")
            return
        if context is None:
            raise ValueError("This MADE was built with a context input; pass context=.")
        if context.shape != (n_rows, self.n_context_features):
            raise ValueError(f"context must have shape ({n_rows}, {self.n_context_features}), "
                             f"got {tuple(context.shape)}.")

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_context(context, x.shape[0])
        h = self.input_range(x)
        if self.context_range is not None:
            context = self.context_range(context)
        for k, layer in enumerate(self.layers[:-1]):
            h = layer(h)
            if self.context_layers is not None:
                h = h + self.context_layers[k](context)
            h = self.activation(h)
        return self.layers[-1](h).view(x.shape[0], self.n_params, self.n_features)

    @torch.no_grad()
    def sample_sequentially(self, decide, n: int, like: torch.Tensor,
                            context: torch.Tensor | None = None) -> torch.Tensor:
        """Fill in ``x`` one input at a time in the autoregressive order.

        ``decide(i, params)`` receives the conditional parameters of input ``i``
        (shape ``(n, n_params)``) and returns its values ``(n,)``. Input ``i``'s
        parameters depend only on the inputs before it, which are final by
        then, so after D passes every input is. (The accelerator computes each
        hidden unit once instead of D times; this is the definition it is
        tested against.) The result carries no gradient.
        """
        x = like.new_zeros(n, self.n_features)
        for i in self.order.tolist():
            x[:, i] = decide(i, self(x, context)[:, :, i])
        return x
