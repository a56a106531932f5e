"""Polyak averaging: an exponential moving average of the weights during training.

Adam's last iterate wanders around the optimum by about its step size; the
average of the recent iterates sits closer to it and generalises better on
small data sets (benchmarks/README.md, "Weight averaging and the L2 penalty").
The average does not change the model, only which weights of the
optimisation's path are kept.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["WeightAverage"]

#: The warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``:
#: update ``t`` decays by at most ``(1 + t) / (WARM_UP + t)``.
WARM_UP = 10


class WeightAverage:
    """Exponential moving average of ``tensors``, updated after each optimiser step.

    Update ``t`` (1, 2, ...) sets ``average = d * average + (1 - d) * tensor``
    with ``d = min(decay, (1 + t) / (10 + t))``: early updates follow the
    weights closely, so that a fit of a few steps is not held near its
    initialisation, and from about ``10 / (1 - decay)`` steps on the decay is
    ``decay``. Weights that are zero throughout (masked-out MADE weights) stay
    exactly zero in the average.

    Parameters
    ----------
    tensors : list of torch.Tensor
        The parameters, updated in place by the optimiser.
    decay : float in (0, 1)
    """

    def __init__(self, tensors: list[torch.Tensor], decay: float):
        self.tensors = tensors
        self.decay = float(decay)
        self.n_updates = 0
        self.average = [tensor.detach().clone() for tensor in tensors]

    @torch.no_grad()
    def update(self) -> None:
        self.n_updates += 1
        decay = min(self.decay, (1 + self.n_updates) / (WARM_UP + self.n_updates))
        for average, tensor in zip(self.average, self.tensors):
            average.lerp_(tensor, 1.0 - decay)

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average afresh from the tensors' current values."""
        for average, tensor in zip(self.average, self.tensors):
            average.copy_(tensor)

    @contextmanager
    def applied(self):
        """Within the block, the tensors hold the average; afterwards, their own values."""
        with torch.no_grad():
            current = [tensor.clone() for tensor in self.tensors]
            for tensor, average in zip(self.tensors, self.average):
                tensor.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for tensor, value in zip(self.tensors, current):
                    tensor.copy_(value)
