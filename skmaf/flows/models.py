"""Builders: the paper's hyperparameters (K, L, H, C) in, a :class:`Flow` out.

Each builder takes ``n_context_features``: with a positive width every network
of the flow also sees a context vector, and the flow is the paper's conditional
density ``p(x | context)`` (section 4.4); with 0, the default, it is unconditional.
"""

from __future__ import annotations

import torch

from .autoregressive import MaskedAffineAutoregressive
from .base import Flow, StandardNormal
from .coupling import AffineCoupling, alternating_masks
from .defensive import DefensiveNormal
from .made import MADE, make_order
from .mixture import MADEMoG
from .normalization import BatchNorm

__all__ = ["build_made_mog", "build_maf", "build_realnvp"]


def gaussian_base(n_features: int, tail_weight: float):
    """N(0, I), or with ``tail_weight > 0`` its defensive mixture (:mod:`.defensive`)."""
    if tail_weight == 0:
        return StandardNormal(n_features)
    return DefensiveNormal(n_features, tail_weight)


def _next_order(order, input_order, n_features, generator):
    """The order of the next autoregressive layer: reversed, or freshly random."""
    if isinstance(input_order, str) and input_order == "random":
        return make_order("random", n_features, generator)
    return order[::-1].copy()


def build_maf(
    n_features: int,
    n_transforms: int,
    n_hidden_layers: int,
    n_hidden_units: int,
    activation: str = "relu",
    batch_norm: bool = True,
    input_order="sequential",
    n_components: int = 1,
    tail_weight: float = 0.0,
    n_context_features: int = 0,
    generator: torch.Generator | None = None,
) -> Flow:
    """Masked Autoregressive Flow: K Gaussian MADEs, each followed by batch norm.

    The first MADE uses ``input_order``; each next one reverses the order of the
    one before (the paper's choice), except with ``"random"``, where each MADE
    draws a fresh random order. Reversing the order inside the MADE is the same
    flow as a permutation layer between MADEs, without the extra op.
    Batch norm follows every MADE, as in the paper's code.

    With ``n_components > 1`` the base density is a MADE MoG (the paper's MAF
    MoG) continuing the order pattern; otherwise it is N(0, I), or with
    ``tail_weight > 0`` N(0, I) with that weight moved to a wide component
    (:mod:`.defensive`).
    """
    order = make_order(input_order, n_features, generator)
    transforms = []
    for _ in range(n_transforms):
        made = MADE(n_features, n_hidden_layers, n_hidden_units, n_params=2, order=order,
                    activation=activation, n_context_features=n_context_features,
                    generator=generator)
        transforms.append(MaskedAffineAutoregressive(made))
        if batch_norm:
            transforms.append(BatchNorm(n_features))
        order = _next_order(order, input_order, n_features, generator)
    if n_components == 1:
        return Flow(transforms, gaussian_base(n_features, tail_weight))
    base = MADEMoG(n_features, n_hidden_layers, n_hidden_units, n_components, order,
                   activation, n_context_features, generator)
    return Flow(transforms, base)


def build_made_mog(
    n_features: int,
    n_hidden_layers: int,
    n_hidden_units: int,
    n_components: int,
    activation: str = "relu",
    input_order="sequential",
    n_context_features: int = 0,
    generator: torch.Generator | None = None,
) -> Flow:
    """A single MADE with mixture-of-Gaussian conditionals, as a flow with no transform."""
    order = make_order(input_order, n_features, generator)
    base = MADEMoG(n_features, n_hidden_layers, n_hidden_units, n_components, order,
                   activation, n_context_features, generator)
    return Flow([], base)


def build_realnvp(
    n_features: int,
    n_transforms: int,
    n_hidden_layers: int,
    n_hidden_units: int,
    batch_norm: bool = True,
    tail_weight: float = 0.0,
    n_context_features: int = 0,
    generator: torch.Generator | None = None,
) -> Flow:
    """Real NVP: K affine coupling layers with alternating masks, batch norm after each,
    over N(0, I) (or its defensive mixture, as in :func:`build_maf`)."""
    transforms = []
    for mask in alternating_masks(n_features, n_transforms):
        transforms.append(AffineCoupling(mask, n_hidden_layers, n_hidden_units,
                                         n_context_features, generator))
        if batch_norm:
            transforms.append(BatchNorm(n_features))
    return Flow(transforms, gaussian_base(n_features, tail_weight))
