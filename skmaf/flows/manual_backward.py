"""MAF's training loss and its gradient, with the backward pass written out by hand.

A MAF training step at the paper's sizes (K=5, L=2, H=100, batch 256) is
small: about 100 MFLOP, 1.5 ms of matrix products on one CPU core. With
autograd it took 6 ms, most of it per-op bookkeeping (recording the graph,
saving tensors, accumulating gradients); the same arithmetic written out
here takes 4 ms (``benchmarks/micro.py``). The backward pass of a MAF is
short enough to write down: for one MADE step ``y = (x - mu) * exp(m)`` with
``m = -7 tanh(raw / 7)`` (:func:`~skmaf.flows.autoregressive.soft_clamp`) and
``log|det| = sum(m)``, and for batch norm with minibatch statistics.

Only what the flows of :func:`~skmaf.flows.build_maf` contain is covered:
Gaussian MADE steps without context, batch norm in training mode and the
standard normal base. :func:`supports_manual_backward` says whether a flow
qualifies; any other flow trains through autograd. The result equals
autograd's to rounding (tests/flows/test_manual_backward.py); the model, the
loss and so the fit are the paper's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .autoregressive import LOG_SCALE_BOUND, MaskedAffineAutoregressive
from .base import Flow, StandardNormal
from .normalization import BatchNorm

__all__ = ["nll_and_gradients", "supports_manual_backward"]


def supports_manual_backward(flow: Flow) -> bool:
    """Whether :func:`nll_and_gradients` can train ``flow`` (a MAF, with or without batch norm).

    Exact types only: the manual pass bypasses ``forward`` and ``log_prob``,
    so a subclass that overrides them (or a wrapper) must train through autograd.
    """
    if type(flow) is not Flow or type(flow.base) is not StandardNormal or not flow.transforms:
        return False
    for transform in flow.transforms:
        if type(transform) is BatchNorm:
            continue
        if type(transform) is not MaskedAffineAutoregressive:
            return False
        made = transform.made
        if made.context is not None or type(made.activation) not in (nn.ReLU, nn.Tanh):
            return False
    return True


@torch.no_grad()
def nll_and_gradients(flow: Flow, x: torch.Tensor, gradients: dict) -> torch.Tensor:
    """The mean negative log-likelihood of the minibatch ``x``, and its gradient.

    The gradient with respect to each parameter ``p`` of ``flow`` is written
    into ``gradients[p]``, a tensor of ``p``'s shape (it may be a view into a
    larger buffer); nothing else is touched, and ``p.grad`` is not used.
    Batch norm layers use the minibatch statistics (training mode).

    Returns the loss as a 0-d tensor: what ``-flow.log_prob(x).mean()``
    returns in training mode.
    """
    n_rows, n_features = x.shape
    caches = []
    log_dets = []  # each layer's log|det| summed over the rows, as 0-d tensors
    for transform in flow.transforms:
        if type(transform) is BatchNorm:
            x, cache = _batch_norm_forward(transform, x)
            log_dets.append(cache.log_scale.sum() * n_rows)
        else:
            x, cache = _affine_forward(transform, x)
            log_dets.append(cache.minus_alpha.sum())
        caches.append(cache)

    # The loss: 0.5 |u|^2 + (D/2) log(2 pi) - log|det|, averaged over the rows.
    loss = (x.square().sum() * 0.5 - torch.stack(log_dets).sum()) / n_rows
    loss += 0.5 * n_features * math.log(2 * math.pi)

    grad = x / n_rows  # d loss / d u
    constants = _Constants(x, n_rows)
    for index in range(len(caches) - 1, -1, -1):
        transform, cache = flow.transforms[index], caches[index]
        need_input_gradient = index > 0  # the flow's own input is data
        if type(transform) is BatchNorm:
            grad = _batch_norm_backward(transform, cache, grad, gradients, constants)
        else:
            grad = _affine_backward(transform, cache, grad, gradients, constants,
                                    need_input_gradient)
    return loss


class _Constants:
    """Scalars the backward pass adds, as 0-d tensors so that one fused op can use them."""

    def __init__(self, like: torch.Tensor, n_rows: int):
        self.minus_one = like.new_full((), -1.0)
        # d loss / d (one row's log|det|)
        self.minus_inverse_rows = like.new_full((), -1.0 / n_rows)
        self.inverse_rows = 1.0 / n_rows


class _AffineCache:
    __slots__ = ("inputs", "hidden", "tanh", "scale", "output", "minus_alpha")


def _affine_forward(transform: MaskedAffineAutoregressive, x: torch.Tensor):
    made = transform.made
    cache = _AffineCache()
    cache.inputs = x
    cache.hidden = []
    h = x
    for layer in made.layers[:-1]:
        h = made.activation(F.linear(h, layer.weight, layer.bias))
        cache.hidden.append(h)
    last = made.layers[-1]
    mu, raw_alpha = F.linear(h, last.weight, last.bias).split(x.shape[1], dim=1)
    # minus_alpha = -soft_clamp(raw_alpha), as in MaskedAffineAutoregressive.forward
    cache.tanh = torch.tanh(raw_alpha * (1 / LOG_SCALE_BOUND))
    cache.minus_alpha = cache.tanh * -LOG_SCALE_BOUND
    cache.scale = torch.exp(cache.minus_alpha)
    cache.output = (x - mu).mul_(cache.scale)
    return cache.output, cache


def _affine_backward(transform, cache: _AffineCache, grad_y, gradients, constants,
                     need_input_gradient: bool):
    """Gradients of the MADE's weights from ``grad_y = d loss / d y``; returns d loss / d x.

    With ``y = (x - mu) s``, ``s = exp(m)``, ``m = -7 tanh(raw / 7)`` and each
    row's log|det| ``sum(m)`` entering the loss with weight ``-1/n``:
    ``d/dx (direct) = grad_y s``, ``d/dmu = -grad_y s``,
    ``d/dm = grad_y y - 1/n`` and ``dm/draw = tanh^2 - 1``.
    """
    made = transform.made
    n_rows, n_features = grad_y.shape
    padded = _padded_width(n_features)
    grad_out = grad_y.new_empty(n_rows, 2 * n_features)
    grad_mu, grad_raw = grad_out.split(n_features, dim=1)
    # d/dx through x - mu, in the padded width of the input gradient below
    direct_padded = grad_y.new_zeros(n_rows, padded)
    direct = direct_padded[:, :n_features]
    torch.mul(grad_y, cache.scale, out=direct)
    torch.neg(direct, out=grad_mu)
    grad_minus_alpha = torch.addcmul(constants.minus_inverse_rows, grad_y, cache.output)
    torch.mul(grad_minus_alpha, torch.addcmul(constants.minus_one, cache.tanh, cache.tanh),
              out=grad_raw)

    grad = grad_out
    layers = made.layers
    for depth in range(len(layers) - 1, 0, -1):
        layer, below = layers[depth], cache.hidden[depth - 1]
        torch.mm(grad.t(), below, out=gradients[layer.weight])
        torch.sum(grad, dim=0, out=gradients[layer.bias])
        grad = _activation_backward(made.activation, torch.mm(grad, layer.weight), below)

    # The first layer, whose D inputs are few: MKL multiplies a D-wide operand
    # 2-3x faster when it is zero-padded to a multiple of 16 columns
    # (measured with D = 2, 10, 27, 62), more than the padding costs.
    first = layers[0]
    inputs = _pad_columns(cache.inputs, padded)
    gradients[first.weight].copy_(torch.mm(grad.t(), inputs)[:, :n_features])
    torch.sum(grad, dim=0, out=gradients[first.bias])
    if not need_input_gradient:
        return None
    weight = _pad_columns(first.weight, padded)
    return torch.addmm(direct_padded, grad, weight)[:, :n_features]


def _padded_width(n_features: int) -> int:
    return -(-n_features // 16) * 16


def _pad_columns(matrix: torch.Tensor, width: int) -> torch.Tensor:
    if matrix.shape[1] == width:
        return matrix
    return torch.nn.functional.pad(matrix, (0, width - matrix.shape[1]))


def _activation_backward(activation: nn.Module, grad: torch.Tensor, output: torch.Tensor):
    """d loss / d pre-activation, from the gradient and value of the activation's output."""
    if type(activation) is nn.ReLU:
        return torch.ops.aten.threshold_backward(grad, output, 0)
    return grad.mul_(1 - output.square())  # tanh' = 1 - tanh^2


class _BatchNormCache:
    __slots__ = ("centred", "variance", "log_scale", "scale")


def _batch_norm_forward(transform: BatchNorm, x: torch.Tensor):
    """``u = (x - mean) * exp(log_scale) + beta`` with minibatch statistics (training mode)."""
    cache = _BatchNormCache()
    # Not torch.var_mean: on a (256, 62) batch it took 140 us, these three 40.
    cache.centred = x - x.mean(dim=0)
    cache.variance = cache.centred.square().mean(dim=0).add_(transform.eps)
    cache.log_scale = transform.log_gamma - 0.5 * torch.log(cache.variance)
    cache.scale = torch.exp(cache.log_scale)
    return torch.addcmul(transform.beta, cache.centred, cache.scale), cache


def _batch_norm_backward(transform: BatchNorm, cache: _BatchNormCache, grad_u, gradients,
                         constants):
    """Batch norm's gradients, the mean and variance being functions of the batch.

    With ``c = exp(log_scale)``, ``v`` the variance plus eps and each row's
    log|det| ``sum(log_scale)``: ``d/dbeta = sum_rows grad_u``,
    ``d/dlog_gamma = c sum_rows(grad_u (x - mean)) - 1``, and
    ``d/dx = c (grad_u - d/dbeta / n) - (x - mean) d/dlog_gamma / (n v)``
    (the variance's own dependence on the mean vanishes: the centred rows sum to 0).
    """
    grad_beta = torch.sum(grad_u, dim=0, out=gradients[transform.beta])
    grad_log_gamma = gradients[transform.log_gamma]
    torch.mul(torch.sum(grad_u * cache.centred, dim=0), cache.scale, out=grad_log_gamma)
    grad_log_gamma.sub_(1.0)
    coefficient = torch.div(grad_log_gamma, cache.variance).mul_(constants.inverse_rows)
    grad_x = torch.sub(grad_u, grad_beta, alpha=constants.inverse_rows).mul_(cache.scale)
    return grad_x.addcmul_(cache.centred, coefficient, value=-1)
