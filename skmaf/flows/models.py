"""Builders: the paper's hyperparameters (K, L, H) in, a :class:`Flow` out."""

from __future__ import annotations

import numpy as np
import torch

from .autoregressive import MaskedAffineAutoregressive
from .base import Flow, StandardNormal
from .made import MADE, make_order
from .normalization import BatchNorm

__all__ = ["build_maf"]


def build_maf(
    n_features: int,
    n_transforms: int,
    n_hidden_layers: int,
    n_hidden_units: int,
    activation: str = "relu",
    batch_norm: bool = True,
    input_order="sequential",
    generator: torch.Generator | None = None,
) -> Flow:
    """Masked Autoregressive Flow: K Gaussian MADEs, each followed by batch norm.

    The first MADE uses ``input_order``; each next one reverses the order of the
    one before (the paper's choice), except with ``"random"``, where each MADE
    draws a fresh random order. Reversing the order inside the MADE is the same
    flow as a permutation layer between MADEs, without the extra op.
    Batch norm follows every MADE, as in the paper's code.
    """
    order = make_order(input_order, n_features, generator)
    transforms = []
    for _ in range(n_transforms):
        made = MADE(
            n_features, n_hidden_layers, n_hidden_units, n_params=2,
            order=order, activation=activation, generator=generator,
        )
        transforms.append(MaskedAffineAutoregressive(made))
        if batch_norm:
            transforms.append(BatchNorm(n_features))
        if isinstance(input_order, str) and input_order == "random":
            order = make_order("random", n_features, generator)
        else:
            order = order[::-1].copy()
    return Flow(transforms, StandardNormal(n_features))
