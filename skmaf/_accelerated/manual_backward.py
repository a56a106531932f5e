"""MAF's training loss and its gradient, with the backward pass written out by hand.

A MAF training step at the paper's sizes is small, and through autograd most
of its time goes to per-op bookkeeping (recording the graph, saving tensors,
accumulating gradients) and module calls; the same arithmetic written out
here runs faster (``benchmarks/micro.py``, rows "skmaf" against "skmaf
autograd"; the choices inside are measured by ``benchmarks/step_parts.py``).
The backward pass of a MAF is short enough to write down: for one MADE step
``y = x * exp(m) + beta`` with ``m = -7 tanh(raw / 7)``
(:func:`~skmaf.flows.autoregressive.soft_clamp`) and ``log|det| = sum(m)``, and
for batch norm with minibatch statistics.

Only what the flows of :func:`~skmaf.flows.build_maf` contain is covered, by
exact type: Gaussian MADE steps without context, batch norm in training mode,
and the Gaussian base (N(0, I) or its defensive mixture, whose gradient has a
closed form) or the MAF MoG's MADE MoG base. The mixture
base's log-density has no short backward pass, so autograd differentiates it
alone, from the base variables ``u`` (a leaf) to the loss: its gradient with
respect to ``u`` then enters the hand-written pass through the steps, which
is where a MAF MoG spends most of its step. :func:`supports_manual_backward`
says whether a flow qualifies; any other flow trains through autograd. The
pass reads the raw weights, so the weights outside each mask must be zero (the
accelerated step keeps them so). The result equals autograd's to rounding
(tests/accelerated/).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..flows import (
    MADE,
    BatchNorm,
    DefensiveNormal,
    Flow,
    MADEMoG,
    MaskedAffineAutoregressive,
    MaskedLinear,
    StandardNormal,
)
from ..flows.autoregressive import LOG_SCALE_BOUND
from . import private_ops
from .activations import in_place

__all__ = ["ManualBackward", "supports_manual_backward"]


def supports_manual_backward(flow: Flow) -> bool:
    """Whether :class:`ManualBackward` can train ``flow`` (a MAF or MAF MoG, with or
    without batch norm, without context).

    Exact types only: the manual pass bypasses ``forward`` and ``log_prob``,
    so a subclass that overrides them (or a wrapper) must train through autograd.
    """
    if type(flow) is not Flow or not flow.transforms or not _supported_base(flow.base):
        return False
    for transform in flow.transforms:
        if type(transform) is BatchNorm:
            continue
        if type(transform) is not MaskedAffineAutoregressive:
            return False
        made = transform.made
        if (type(made) is not MADE or made.context_layers is not None
                or type(made.activation) not in (nn.ReLU, nn.Tanh)
                or any(type(layer) is not MaskedLinear for layer in made.layers)):
            return False
    return True


def _supported_base(base) -> bool:
    """N(0, I) or its defensive mixture, or a MADE MoG without context
    (differentiated by autograd, alone)."""
    if type(base) in (StandardNormal, DefensiveNormal):
        return True
    return (type(base) is MADEMoG and type(base.made) is MADE
            and base.made.context_layers is None)


class ManualBackward:
    """The mean negative log-likelihood of a minibatch under ``flow``, and its gradient.

    Parameters
    ----------
    flow : Flow
        A MAF or MAF MoG, as :func:`supports_manual_backward` checks.
    gradients : dict
        ``gradients[p]``, for each parameter ``p`` of ``flow``: a tensor of
        ``p``'s shape (it may be a view into a larger buffer) where each call
        writes the gradient with respect to ``p``. ``p.grad`` is not used.

    The flow's layers are read once, here, into plain lists: looking up
    modules and attributes on every step costs as much as a tiny MAF's
    arithmetic. The parameters are held, not copied, so they may be rebound
    (``p.data = ...``) between calls.
    """

    def __init__(self, flow: Flow, gradients: dict):
        self._steps = [
            _BatchNormStep(t, gradients) if type(t) is BatchNorm else _AffineStep(t, gradients)
            for t in flow.transforms
        ]
        self._base = (None if type(flow.base) is StandardNormal
                      else _DefensiveBase(flow.base) if type(flow.base) is DefensiveNormal
                      else _AutogradBase(flow.base, gradients))
        self._constants = {}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Write the gradient for the minibatch ``x``; return the loss (0-d).

        The loss is what ``-flow.log_prob(x).mean()`` returns in training mode:
        batch norm layers use the minibatch statistics.
        """
        n_rows, n_features = x.shape
        caches = []
        # What each layer adds to log|det|, summed once for all layers below:
        # one sum over many tensors is a few ops, a sum per layer is a few per layer.
        log_scales = {_AffineStep: [], _BatchNormStep: []}
        for step in self._steps:
            x, cache, log_scale = step.forward(x)
            caches.append(cache)
            log_scales[type(step)].extend(log_scale)
        # The loss: -log p_base(u) - log|det|, averaged over the rows; for N(0, I),
        # 0.5 |u|^2 + (D/2) log(2 pi). A MADE step's log|det| is the sum of its
        # n x D log-scales; batch norm's, the same for every row, the sum of its D
        # log-scales (one row's).
        if self._base is None:
            base_loss = x.square().sum() * 0.5 / n_rows + 0.5 * n_features * math.log(2 * math.pi)
            grad = x / n_rows  # d loss / d u
        else:
            base_loss, grad = self._base(x)
        loss = base_loss - torch.cat(log_scales[_AffineStep], dim=1).sum() / n_rows
        if log_scales[_BatchNormStep]:
            loss -= torch.cat(log_scales[_BatchNormStep]).sum()

        constants = self._constants.get((n_rows, x.dtype, x.device))
        if constants is None:
            constants = self._constants[n_rows, x.dtype, x.device] = _Constants(x, n_rows)
        for index in range(len(self._steps) - 1, -1, -1):
            # The flow's own input is data: no gradient needed there.
            grad = self._steps[index].backward(caches[index], grad, constants, index > 0)
        return loss


class _DefensiveBase:
    """The defensive Gaussian base: ``-mean log p(u)`` and its gradient with respect to
    ``u``, in closed form (it has no parameters)."""

    def __init__(self, base: DefensiveNormal):
        self.base = base

    def __call__(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_prob, score = self.base.log_prob_and_score(u)
        return -log_prob.mean(), score / -u.shape[0]


class _AutogradBase:
    """A base density differentiated by autograd on its own: ``-mean log p(u)``, its
    gradient with respect to ``u``, and its parameters' gradients written in place."""

    def __init__(self, base, gradients: dict):
        self.base = base
        self.parameters = list(base.parameters())
        self.gradients = [gradients[p] for p in self.parameters]

    def __call__(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = u.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = -self.base.log_prob(u).mean()
            grad_u, *grads = torch.autograd.grad(loss, [u, *self.parameters])
        for target, grad in zip(self.gradients, grads):
            target.copy_(grad)
        return loss.detach(), grad_u


#: Below this many features, the first layer's d/dW is computed as ``(x^T grad)^T``.
NARROW_SIDE_FIRST_BELOW = 16


class _Constants:
    """Scalars the backward pass adds, as 0-d tensors so that one fused op can use them."""

    def __init__(self, like: torch.Tensor, n_rows: int):
        self.minus_one = like.new_full((), -1.0)
        # d loss / d (one row's log|det|) is -1/n; the MADE step needs -4 times it.
        self.four_inverse_rows = like.new_full((), 4.0 / n_rows)
        self.inverse_rows = 1.0 / n_rows


class _AffineStep:
    """A Gaussian MADE step: ``y = x * exp(m) + beta``, ``m = -7 tanh(raw / 7)``,
    ``log|det| = sum(m)``."""

    def __init__(self, transform: MaskedAffineAutoregressive, gradients: dict):
        made = transform.made
        self.layers = [(layer.weight, layer.bias, gradients[layer.weight], gradients[layer.bias])
                       for layer in made.layers]
        self.relu = type(made.activation) is nn.ReLU
        self.threshold_op = private_ops.available("threshold_backward")
        # Every product through torch's own F.linear / torch.mm (MKL on the CPU):
        # oneDNN made the step 23-41% slower on one CPU and at most 17% faster on
        # another (benchmarks/README.md, "The redesign's cost"); scoring keeps it.
        # In place, on the product's own output: one tensor fewer a layer.
        self.activation = in_place(made.activation)
        self.n_features = made.n_features
        # MKL computes grad @ W and grad^T x for a D-wide W or x faster when it is
        # zero-padded to a multiple of 16 columns, the padding included
        # (benchmarks/step_parts.py): the first layer's gradients are computed so,
        # but d/dW below 16 columns.
        self.padded_width = -(-self.n_features // 16) * 16
        self._buffers = {}

    def forward(self, x):
        hidden = []
        h = x
        for weight, bias, _, _ in self.layers[:-1]:
            h = self.activation(F.linear(h, weight, bias))
            hidden.append(h)
        weight, bias, _, _ = self.layers[-1]
        output = F.linear(h, weight, bias)
        beta, raw_alpha = output.tensor_split(2, dim=1)
        # minus_alpha = -soft_clamp(raw_alpha) = -7 tanh(raw / 7) = 7 - 14 sigmoid(2 raw / 7):
        # torch's sigmoid is several times faster than its tanh on the CPU.
        sigmoid = torch.sigmoid(raw_alpha * (2 / LOG_SCALE_BOUND))
        minus_alpha = torch.rsub(sigmoid, LOG_SCALE_BOUND, alpha=2 * LOG_SCALE_BOUND)
        scale = torch.exp(minus_alpha)
        y = torch.addcmul(beta, x, scale)
        return y, (x, hidden, sigmoid, scale), [minus_alpha]

    def backward(self, cache, grad_y, constants, need_input_gradient):
        """Gradients of the MADE's weights from ``grad_y = d loss / d y``; returns d loss / d x.

        Each row's log|det| ``sum(m)`` enters the loss with weight ``-1/n``, so
        ``d/dx (direct) = grad_y s``, ``d/dbeta = grad_y``,
        ``d/dm = grad_y x s - 1/n`` and ``dm/draw = -4 sigmoid (1 - sigmoid)``, with
        ``s = exp(m)`` and the sigmoid of the forward pass.
        """
        x, hidden, sigmoid, scale = cache
        n_features = self.n_features
        grad_out, grad_beta, grad_raw, direct_padded, direct = self._buffers_like(grad_y)
        torch.mul(grad_y, scale, out=direct)
        grad_beta.copy_(grad_y)
        # d/draw = (grad_y x s - 1/n) (-4 sigmoid (1 - sigmoid))
        #        = (4/n - 4 direct x) (sigmoid - sigmoid^2), in two fused ops and a product
        torch.mul(torch.addcmul(constants.four_inverse_rows, direct, x, value=-4),
                  torch.addcmul(sigmoid, sigmoid, sigmoid, value=-1), out=grad_raw)

        grad = grad_out
        for depth in range(len(self.layers) - 1, 0, -1):
            weight, _, grad_weight, grad_bias = self.layers[depth]
            below = hidden[depth - 1]
            torch.mm(grad.t(), below, out=grad_weight)
            torch.sum(grad, dim=0, out=grad_bias)
            # grad @ weight; torch.mm rather than F.linear(grad, weight.t()), one op less.
            grad = torch.mm(grad, weight)
            if self.relu:
                grad = private_ops.threshold_backward(grad, below, self.threshold_op)
            else:
                grad.mul_(1 - below.square())  # tanh' = 1 - tanh^2

        weight, _, grad_weight, grad_bias = self.layers[0]
        if n_features < NARROW_SIDE_FIRST_BELOW:
            # (x^T grad)^T: MKL computes this H x D product faster with its narrow
            # side first than with x padded, below 16 features (benchmarks/step_parts.py).
            grad_weight.copy_(torch.mm(x.t(), grad).t())
        elif self.padded_width == n_features:
            torch.mm(grad.t(), x, out=grad_weight)
        else:
            grad_weight.copy_(torch.mm(grad.t(), self._padded(x))[:, :n_features])
        torch.sum(grad, dim=0, out=grad_bias)
        if not need_input_gradient:
            return None
        return torch.addmm(direct_padded, grad, self._padded(weight))[:, :n_features]

    def _buffers_like(self, grad_y):
        """Buffers for d/d(beta, raw) and for d/dx through ``x * s`` (zero-padded to the
        padded width), kept from step to step: an allocation is an op's worth of time."""
        key = (grad_y.shape[0], grad_y.dtype, grad_y.device)
        if key not in self._buffers:
            grad_out = grad_y.new_empty(grad_y.shape[0], 2 * self.n_features)
            direct_padded = grad_y.new_zeros(grad_y.shape[0], self.padded_width)
            self._buffers[key] = (grad_out, *grad_out.tensor_split(2, dim=1),
                                  direct_padded, direct_padded[:, :self.n_features])
        return self._buffers[key]

    def _padded(self, matrix):
        if matrix.shape[1] == self.padded_width:
            return matrix
        return torch.constant_pad_nd(matrix, (0, self.padded_width - matrix.shape[1]))


class _BatchNormStep:
    """``u = (x - mean) * exp(log_scale) + beta``, ``log_scale = log_gamma - 0.5 log(var + eps)``,
    with minibatch statistics (training mode).

    :func:`~.private_ops.batch_norm_forward` computes the statistics and the
    output (with ``gamma = exp(log_gamma)`` as its weight), and
    :func:`~.private_ops.batch_norm_backward` gives d/dx, d/dgamma and
    d/dbeta, each in one of torch's kernels where the probe allows; what they
    leave out is the log-determinant ``sum(log_scale)`` per row, which enters
    the loss as ``-sum(log_scale)``: its derivative is -1 in ``log_gamma`` and
    ``(x - mean) / (n (var + eps))`` in ``x``.
    """

    def __init__(self, transform: BatchNorm, gradients: dict):
        self.log_gamma, self.beta, self.eps = transform.log_gamma, transform.beta, transform.eps
        self.grad_log_gamma = gradients[transform.log_gamma]
        self.grad_beta = gradients[transform.beta]
        self.kernels = private_ops.available("batch_norm")

    def forward(self, x):
        gamma = torch.exp(self.log_gamma)
        u, mean, inverse_std = private_ops.batch_norm_forward(x, gamma, self.beta, self.eps,
                                                              self.kernels)
        # log_scale = log_gamma + log(inverse_std): ManualBackward sums all layers' at once.
        return u, (x, gamma, mean, inverse_std), [self.log_gamma, torch.log(inverse_std)]

    def backward(self, cache, grad_u, constants, need_input_gradient):
        x, gamma, mean, inverse_std = cache
        # The MADE step above hands over a column slice of a padded buffer; the
        # kernel is faster on a contiguous copy, the copy included.
        grad_u = grad_u.contiguous()
        grad_x, grad_gamma, grad_beta = private_ops.batch_norm_backward(
            grad_u, x, gamma, mean, inverse_std, self.eps, self.kernels)
        self.grad_beta.copy_(grad_beta)
        # d/dlog_gamma = gamma d/dgamma - 1 (the log-determinant's share)
        torch.addcmul(constants.minus_one, grad_gamma, gamma, out=self.grad_log_gamma)
        if not need_input_gradient:
            return None
        return grad_x.addcmul_(x - mean, inverse_std.square(), value=constants.inverse_rows)
