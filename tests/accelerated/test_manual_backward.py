"""The hand-written backward pass of MAF equals autograd's, for every parameter."""

import pytest
import torch

from skmaf._accelerated.manual_backward import ManualBackward, supports_manual_backward
from skmaf.flows import MaskedLinear, build_made_mog, build_maf, build_realnvp

pytestmark = pytest.mark.every_path


def _maf(n_features, batch_norm=True, activation="relu", n_hidden_layers=2, seed=0,
         n_components=1, tail_weight=0.0):
    """A float64 MAF in training mode, batch norm parameters moved off their initial values."""
    flow = build_maf(n_features, 3, n_hidden_layers, 12, activation=activation,
                     batch_norm=batch_norm, n_components=n_components, tail_weight=tail_weight,
                     generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for name, parameter in flow.named_parameters():
            if name.endswith(("log_gamma", "beta")):
                parameter.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
    return flow.double().train()


def _autograd(flow, x):
    flow.zero_grad(set_to_none=True)
    loss = -flow.log_prob(x).mean()
    loss.backward()
    gradients = {p: p.grad.clone() for p in flow.parameters()}
    flow.zero_grad(set_to_none=True)
    return loss.detach(), gradients


def _manual(flow, x):
    # NaN everywhere first: every entry must be written.
    gradients = {p: torch.full_like(p, float("nan")) for p in flow.parameters()}
    return ManualBackward(flow, gradients)(x), gradients


def _assert_matches_autograd(flow, x, loss_tolerance, gradient_tolerance):
    """The manual loss and every parameter's gradient equal autograd's; the gradient
    tolerance is relative to the largest gradient."""
    expected_loss, expected = _autograd(flow, x)
    loss, gradients = _manual(flow, x)
    torch.testing.assert_close(loss, expected_loss, rtol=loss_tolerance, atol=loss_tolerance)
    # Outside its mask a weight has no effect, so autograd's gradient there is 0;
    # the manual pass's is the dense one (the step zeroes those weights after Adam).
    masks = {layer.weight: layer.mask for layer in flow.modules()
             if isinstance(layer, MaskedLinear)}
    scale = max(g.abs().max() for g in expected.values())
    for name, parameter in flow.named_parameters():
        mask = masks.get(parameter, 1.0)
        torch.testing.assert_close(gradients[parameter] * mask, expected[parameter],
                                   rtol=0, atol=gradient_tolerance * scale, msg=name)


@pytest.mark.parametrize(
    "n_features, batch_norm, activation, n_hidden_layers",
    [(1, True, "relu", 2), (2, False, "relu", 2), (2, True, "relu", 1), (5, True, "tanh", 3),
     (16, True, "relu", 2), (17, False, "tanh", 1), (17, True, "relu", 2)],
)
def test_loss_and_every_gradient_match_autograd(n_features, batch_norm, activation,
                                                n_hidden_layers):
    flow = _maf(n_features, batch_norm, activation, n_hidden_layers)
    x = 2 * torch.randn(64, n_features, dtype=torch.float64) + 1
    _assert_matches_autograd(flow, x, loss_tolerance=1e-12, gradient_tolerance=1e-10)


@pytest.mark.parametrize("n_features, n_components", [(1, 2), (4, 3), (17, 5)])
def test_maf_mog_matches_autograd(n_features, n_components):
    """MAF MoG: the mixture base through autograd, the steps by hand, one gradient."""
    flow = _maf(n_features, n_components=n_components)
    x = 2 * torch.randn(64, n_features, dtype=torch.float64) + 1
    _assert_matches_autograd(flow, x, loss_tolerance=1e-12, gradient_tolerance=1e-10)


@pytest.mark.parametrize("n_features, batch_norm", [(1, True), (5, False), (17, True)])
def test_defensive_base_matches_autograd(n_features, batch_norm):
    """The defensive Gaussian base's closed-form gradient, with rows far enough out
    (scale 30) that the wide component carries part of the gradient."""
    flow = _maf(n_features, batch_norm=batch_norm, tail_weight=0.05)
    assert supports_manual_backward(flow)
    x = 30 * torch.randn(64, n_features, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(1))
    _assert_matches_autograd(flow, x, loss_tolerance=1e-12, gradient_tolerance=1e-10)


def test_masked_out_weights_get_the_dense_gradient():
    """Outside the masks the manual pass gives the gradient of the unmasked product,
    which the accelerated step discards by zeroing those weights after each update."""
    flow = _maf(6, batch_norm=False)
    x = torch.randn(32, 6, dtype=torch.float64)
    layer = flow.transforms[0].made.layers[0]
    _, gradients = _manual(flow, x)
    _, expected = _autograd(flow, x)
    assert gradients[layer.weight][layer.mask == 0].abs().max() > 0
    assert torch.all(expected[layer.weight][layer.mask == 0] == 0)
    inside = layer.mask == 1
    torch.testing.assert_close(gradients[layer.weight][inside], expected[layer.weight][inside])


def test_float32_matches_autograd_to_float32_rounding():
    flow = _maf(10).float()
    x = torch.randn(256, 10)
    _assert_matches_autograd(flow, x, loss_tolerance=1e-5, gradient_tolerance=1e-4)


def test_float32_at_wide_layers_matches_autograd():
    flow = build_maf(50, 2, 2, 64, generator=torch.Generator().manual_seed(0)).float().train()
    x = torch.randn(256, 50, generator=torch.Generator().manual_seed(1))
    _assert_matches_autograd(flow, x, loss_tolerance=1e-5, gradient_tolerance=1e-4)


def test_leaves_grad_attributes_and_the_model_alone():
    flow = _maf(3)
    before = {name: value.clone() for name, value in flow.state_dict().items()}
    _manual(flow, torch.randn(20, 3, dtype=torch.float64))
    assert all(p.grad is None for p in flow.parameters())
    for name, value in flow.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert flow.training


@pytest.mark.parametrize("build, expected", [
    (lambda: build_maf(3, 2, 1, 8), True),
    (lambda: build_maf(3, 2, 1, 8, batch_norm=False, activation="tanh"), True),
    (lambda: build_maf(3, 2, 1, 8, n_components=2), True),  # MAF MoG: mixture base
    (lambda: build_maf(3, 2, 1, 8, n_components=2, n_context_features=2), False),
    (lambda: build_made_mog(3, 1, 8, 2), False),
    (lambda: build_realnvp(3, 2, 1, 8), False),
])
def test_supports_exactly_the_maf_and_maf_mog(build, expected):
    assert supports_manual_backward(build()) is expected


@pytest.mark.parametrize("n_rows", [1, 2, 3])
def test_tiny_batches_match_autograd(n_rows):
    # Batch norm of one row: zero variance, the scale set by eps alone.
    flow = _maf(3)
    x = torch.randn(n_rows, 3, dtype=torch.float64)
    _assert_matches_autograd(flow, x, loss_tolerance=1e-10, gradient_tolerance=1e-10)
