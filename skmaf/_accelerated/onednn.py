"""Float32 linear products on the CPU through oneDNN, where torch has it.

torch computes ``F.linear`` in float32 on the CPU with MKL; it also ships
oneDNN's linear (``onednn_linear`` in :mod:`.private_ops`), optionally with
the ReLU fused into it, which multiplies faster on many CPUs for most shapes
of a flow (``python benchmarks/onednn.py`` prints the comparison). So:

- scoring (:mod:`.scoring`) uses oneDNN for every product, whatever its rows:
  the choice must not depend on the batch, or a row's bits would;
- a training step (:mod:`.manual_backward`) uses it where both sides of the
  product are at least :data:`MIN_TRAINING_WIDTH`.

Like MKL's, each row's result is the same in any batch whose number of rows
is a multiple of 8, wherever the row sits in it, so scoring stays
batch-invariant on :mod:`.scoring`'s rules (tests/test_accelerated.py checks
both libraries). Everything falls back to ``F.linear`` where the op is
unavailable (``SKMAF_ONEDNN=0``, ``torch.backends.mkldnn.enabled = False``,
a failed probe) and for tensors that are not float32 on the CPU.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from . import private_ops

__all__ = ["MIN_TRAINING_WIDTH", "linear", "linear_relu", "op_for"]

#: In a training step, oneDNN multiplies only where both sides of the product
#: are at least this wide (narrower products were faster with MKL).
MIN_TRAINING_WIDTH = 48


def _applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # oneDNN makes no primitive for an empty side (a coupling layer with no inputs).
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() == 2
            and 0 not in x.shape and 0 not in weight.shape
            and private_ops.available("onednn_linear"))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
           ) -> torch.Tensor:
    """``x @ weight.T + bias``, through oneDNN for float32 CPU tensors when it is available.

    ``weight`` may be a transposed view (``W.t()`` gives ``x @ W``). No autograd.
    """
    if _applies(x, weight):
        return private_ops.onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
                ) -> torch.Tensor:
    """``relu(x @ weight.T + bias)``, the ReLU fused into the product where oneDNN is used."""
    if _applies(x, weight):
        return private_ops.onednn_linear(x, weight, bias, "relu")
    return F.linear(x, weight, bias).relu_()


def op_for(weight: torch.Tensor):
    """For a training step's product with ``weight``: oneDNN's op where it is used and
    faster for this shape, else None (multiply with ``F.linear``). Decided once per layer.
    The op is called as ``op(x, weight, bias, "relu" or "none", [None], "")``."""
    if min(weight.shape) >= MIN_TRAINING_WIDTH and _applies(weight, weight):
        return torch.ops.mkldnn._linear_pointwise.default
    return None
