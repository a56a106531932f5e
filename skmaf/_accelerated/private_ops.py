"""The private torch operations the accelerator uses: the one list of them.

Each entry is looked up and tried once per process on a small input, and
compared with the public computation it replaces; where it is missing, raises,
or disagrees, the accelerator uses that public fallback instead, so a torch
upgrade that drops or changes an op costs speed, never correctness. Tests
check every fallback against the op (tests/accelerated/), and
``SKMAF_PRIVATE_OPS=0`` makes the accelerator use the fallbacks throughout.

Beside these ops the accelerator relies on two undocumented behaviours, each
with its fallback too: parameters rebound to views of one flat tensor
(``p.data = ...``, :mod:`.flat_parameters`; released after training), and one
``torch.compile`` cache per architecture through a copy of the loss's code
object (:mod:`.step`; eager mode if compilation fails).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["PRIVATE_OPS", "available", "batch_norm_backward", "batch_norm_forward",
           "onednn_linear", "threshold_backward"]

#: Set to "0" to use the public fallback of every op below.
ALL_OPS_SWITCH = "SKMAF_PRIVATE_OPS"

#: Set to "0" to multiply with ``F.linear`` (MKL) instead of oneDNN.
ONEDNN_SWITCH = "SKMAF_ONEDNN"


@dataclass(frozen=True)
class PrivateOp:
    torch_name: str
    used_for: str
    fallback: str
    probe: Callable[[], bool]


def _inputs(*shapes):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator) for shape in shapes]


def _probe_fused_adam() -> bool:
    params, grads = _inputs((5,), (5,))
    fused, reference = params.clone(), params.clone()
    moments = [torch.zeros(5) for _ in range(4)]
    options = dict(lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.1, eps=1e-8)
    torch._fused_adam_([fused], [grads], [moments[0]], [moments[1]], [],
                       [torch.ones(())], amsgrad=False, maximize=False, grad_scale=None,
                       found_inf=None, **options)
    from .adam import adam_update_reference

    adam_update_reference(reference, grads, moments[2], moments[3], 1, **options)
    return torch.allclose(fused, reference, rtol=1e-6, atol=1e-7)


def _probe_onednn_linear() -> bool:
    x, weight, bias = _inputs((8, 5), (16, 5), (16,))
    result = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
    return torch.allclose(result, torch.relu(F.linear(x, weight, bias)), rtol=1e-5, atol=1e-5)


def _probe_batch_norm() -> bool:
    x, gamma, beta, grad = _inputs((8, 3), (3,), (3,), (8, 3))
    fast = batch_norm_forward(x, gamma, beta, 1e-5, use_private=True)
    slow = batch_norm_forward(x, gamma, beta, 1e-5, use_private=False)
    fast_grads = batch_norm_backward(grad, x, gamma, *fast[1:], 1e-5, use_private=True)
    slow_grads = batch_norm_backward(grad, x, gamma, *slow[1:], 1e-5, use_private=False)
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-6)
               for a, b in zip((*fast, *fast_grads), (*slow, *slow_grads)))


def _probe_threshold_backward() -> bool:
    grad, below = _inputs((8, 5), (8, 5))
    return torch.equal(torch.ops.aten.threshold_backward(grad, below.relu(), 0),
                       threshold_backward(grad, below.relu(), use_private=False))


#: Every private torch operation the accelerator calls, by the name it uses.
PRIVATE_OPS = {
    "fused_adam": PrivateOp(
        "torch._fused_adam_", "Adam's update in one kernel (adam.py)",
        "torch.optim.Adam's single-tensor formulas", _probe_fused_adam),
    "onednn_linear": PrivateOp(
        "torch.ops.mkldnn._linear_pointwise", "float32 CPU products (onednn.py)",
        "F.linear (MKL)", _probe_onednn_linear),
    "batch_norm": PrivateOp(
        "torch.native_batch_norm, torch.ops.aten.native_batch_norm_backward",
        "batch norm's forward and backward in one kernel each (manual_backward.py)",
        "the formulas written out", _probe_batch_norm),
    "threshold_backward": PrivateOp(
        "torch.ops.aten.threshold_backward", "ReLU's backward (manual_backward.py)",
        "grad * (h > 0)", _probe_threshold_backward),
}


@functools.cache
def _works(name: str) -> bool:
    try:
        return bool(PRIVATE_OPS[name].probe())
    except Exception:  # missing op, changed signature, unsupported build
        return False


def available(name: str) -> bool:
    """Whether the accelerator may call private op ``name`` (probed once per process)."""
    if os.environ.get(ALL_OPS_SWITCH, "1") == "0":
        return False
    if name == "onednn_linear" and (os.environ.get(ONEDNN_SWITCH, "1") == "0"
                                    or not torch.backends.mkldnn.enabled):
        return False
    return _works(name)


# ----------------------------------------------------------- ops with fallbacks
def onednn_linear(x, weight, bias, activation: str = "none"):
    """``x @ weight.T + bias`` (then ReLU with ``activation="relu"``) through oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [None], "")


def threshold_backward(grad: torch.Tensor, output: torch.Tensor, use_private: bool = True):
    """ReLU's backward: ``grad`` where the ReLU's ``output`` is positive, else 0."""
    if use_private:
        return torch.ops.aten.threshold_backward(grad, output, 0)
    return grad * (output > 0)


def batch_norm_forward(x, gamma, beta, eps: float, use_private: bool = True):
    """Training-mode batch norm: ``(u, mean, 1 / sqrt(var + eps))``, biased variance."""
    if use_private:
        return torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, eps)
    var, mean = torch.var_mean(x, dim=0, correction=0)
    inverse_std = torch.rsqrt(var + eps)
    return (x - mean) * (inverse_std * gamma) + beta, mean, inverse_std


def batch_norm_backward(grad_u, x, gamma, mean, inverse_std, eps: float,
                        use_private: bool = True):
    """d/dx, d/dgamma and d/dbeta of :func:`batch_norm_forward` (minibatch statistics)."""
    if use_private:
        return torch.ops.aten.native_batch_norm_backward(
            grad_u, x, gamma, None, None, mean, inverse_std, True, eps, [True, True, True])
    x_hat = (x - mean) * inverse_std
    grad_beta = grad_u.sum(dim=0)
    grad_gamma = (grad_u * x_hat).sum(dim=0)
    n_rows = x.shape[0]
    grad_x = (gamma * inverse_std / n_rows) * (
        n_rows * grad_u - grad_beta - x_hat * grad_gamma)
    return grad_x, grad_gamma, grad_beta
