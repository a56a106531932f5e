"""Float32 linear products on the CPU through oneDNN, where torch has it.

torch computes ``F.linear`` and ``torch.mm`` in float32 on the CPU with MKL.
torch also ships oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the
op that ``torch.compile``'s CPU backend emits), optionally with the ReLU fused
into it. On the 2-core AMD EPYC (AVX-512) of benchmarks/README.md, one thread,
oneDNN took 0.75x MKL's time for the 256 x 100 by 100 x 100 products of a
training step, and 0.45-0.6x for the 2,048-row products of scoring (most
shapes of a MAF, D = 10 to 62); at 256 rows, products with a side narrower
than about 48 were faster with MKL (``python benchmarks/onednn.py`` prints
the comparison). So:

- scoring (:mod:`.evaluation`) uses oneDNN for every product, whatever its
  rows: the choice must not depend on the batch, or a row's bits would;
- a training step (:mod:`.manual_backward`) uses it where both sides of
  the product are at least :data:`MIN_TRAINING_WIDTH`.

The bits: with up to 100 inputs, oneDNN's results equal MKL's; with more they
differ by float32 rounding. Like MKL's, each row's result is the same in any
batch whose number of rows is a multiple of 8, wherever the row sits in it
(checked for 1-1,000 inputs and 1-512 outputs, with and without the ReLU), so
scoring stays batch-invariant on :mod:`.evaluation`'s rules.

The op is private to torch: it is looked up once and tried on a small
product, and everything falls back to ``F.linear`` where it is missing, fails,
or gives a different result, on tensors that are not float32 on the CPU, while
``torch.backends.mkldnn.enabled`` is false, and with ``SKMAF_ONEDNN=0``.
"""

from __future__ import annotations

import functools
import os

import torch
from torch.nn import functional as F

__all__ = ["MIN_TRAINING_WIDTH", "available", "linear", "linear_relu", "op_for", "prefers_onednn"]

#: In a training step, oneDNN multiplies only where both sides of the product
#: are at least this wide.
MIN_TRAINING_WIDTH = 48

#: Set to "0" to use ``F.linear`` everywhere (a comparison, or a fault in oneDNN).
ENVIRONMENT_SWITCH = "SKMAF_ONEDNN"


@functools.cache
def available() -> bool:
    """Whether torch's oneDNN linear is there and agrees with ``F.linear`` on a small product."""
    if os.environ.get(ENVIRONMENT_SWITCH, "1") == "0":
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        generator = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=generator)
                           for shape in ((8, 5), (16, 5), (16,)))
        result = op(x, weight, bias, "relu", [None], "")
        return bool(torch.allclose(result, torch.relu(F.linear(x, weight, bias)),
                                   rtol=1e-5, atol=1e-5))
    except Exception:  # a build without oneDNN, or an op whose signature has changed
        return False


def _applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # oneDNN makes no primitive for an empty side (a coupling layer with no inputs);
    # torch.backends.mkldnn.enabled is torch's own switch, which skmaf follows too.
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() == 2
            and 0 not in x.shape and 0 not in weight.shape
            and torch.backends.mkldnn.enabled and available())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
           ) -> torch.Tensor:
    """``x @ weight.T + bias``, through oneDNN for float32 CPU tensors when it is available.

    ``weight`` may be a transposed view (``W.t()`` gives ``x @ W``). No autograd.
    """
    if _applies(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")
    return F.linear(x, weight, bias)


def linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
                ) -> torch.Tensor:
    """``relu(x @ weight.T + bias)``, the ReLU fused into the product where oneDNN is used."""
    if _applies(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
    return F.linear(x, weight, bias).relu_()


def prefers_onednn(n_rows_of_weight: int, n_columns_of_weight: int) -> bool:
    """Whether a training step's product with this weight shape is faster through oneDNN."""
    return min(n_rows_of_weight, n_columns_of_weight) >= MIN_TRAINING_WIDTH


def op_for(weight: torch.Tensor):
    """oneDNN's op itself, where :func:`linear` would use it for inputs like ``weight``; else None.

    For a caller that multiplies by ``weight`` many times (a training step):
    the checks of :func:`linear` cost 1.6 us a call, which it then pays once.
    The op is called as ``op(x, weight, bias, "relu" or "none", [None], "")``.
    """
    return torch.ops.mkldnn._linear_pointwise.default if _applies(weight, weight) else None
