"""Float32 linear products on the CPU through oneDNN, where torch has it.

torch computes ``F.linear`` in float32 on the CPU with MKL; it also ships
oneDNN's linear (``onednn_linear`` in :mod:`.private_ops`), optionally with
the ReLU fused into it, which multiplies faster on many CPUs for most shapes
of a flow, and slower on others (``python benchmarks/onednn.py`` prints the
comparison). Scoring (:mod:`.scoring`) uses oneDNN for every product, whatever
its rows: the choice must not depend on the batch, or a row's bits would. The
training step does not use it: it was slower there on some CPUs by more than it
was faster on others (benchmarks/README.md, "The redesign's cost").

Like MKL's, each row's result is the same in any batch whose number of rows
is a multiple of 8, wherever the row sits in it, so scoring stays
batch-invariant on :mod:`.scoring`'s rules (tests/accelerated/ checks
both libraries). Everything falls back to ``F.linear`` where the op is
unavailable (``SKMAF_ONEDNN=0``, ``torch.backends.mkldnn.enabled = False``,
a failed probe) and for tensors that are not float32 on the CPU.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from . import private_ops

__all__ = ["linear", "linear_relu"]


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
