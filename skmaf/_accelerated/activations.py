"""Activations applied in place, on a layer's fresh output that nothing else holds."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["in_place"]

_IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_}


def in_place(activation: nn.Module):
    """``activation`` as a function that overwrites its argument (itself if it has no such
    form): no new tensor, which on the CPU costs beyond its arithmetic."""
    return _IN_PLACE.get(type(activation), activation)
