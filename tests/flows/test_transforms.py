"""Every flow layer is an exact bijection with the log-determinant it reports."""

import pytest
import torch

from skmaf.flows import MADE, BatchNorm, MaskedAffineAutoregressive, build_maf, make_order
from skmaf.flows.autoregressive import LOG_SCALE_BOUND, soft_clamp
from skmaf.flows.made import input_degrees

D = 4


def _made_transform(order="sequential", seed=0):
    generator = torch.Generator().manual_seed(seed)
    permutation = make_order(order, D, generator)
    made = MADE(D, 2, 16, n_params=2, order=permutation, generator=generator)
    return MaskedAffineAutoregressive(made).double(), permutation


def _frozen_batch_norm():
    layer = BatchNorm(D).double()
    with torch.no_grad():
        layer.log_gamma.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        layer.beta.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
    layer.freeze_statistics(torch.randn(50, D, dtype=torch.float64) * 3 + 1)
    return layer.eval()


def _flow():
    flow = build_maf(D, 3, 1, 16, generator=torch.Generator().manual_seed(2)).double()
    flow.freeze_statistics(torch.randn(64, D, dtype=torch.float64))
    return flow


def _as_transform(flow):
    return lambda x: flow(x)


LAYERS = {
    "made": lambda: _made_transform()[0],
    "made-reverse": lambda: _made_transform("reverse")[0],
    "batch-norm": _frozen_batch_norm,
    "flow": _flow,
}


def _jacobian(transform, x_row):
    return torch.autograd.functional.jacobian(lambda v: transform(v[None])[0][0], x_row)


@pytest.mark.parametrize("name", LAYERS)
def test_inverse_undoes_forward(name):
    layer = LAYERS[name]()
    x = torch.randn(30, D, dtype=torch.float64) * 2
    u, _ = layer(x)
    inverse = layer.from_base if name == "flow" else layer.inverse
    torch.testing.assert_close(inverse(u), x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", LAYERS)
def test_log_det_equals_autograd_slogdet(name):
    layer = LAYERS[name]()
    x = torch.randn(5, D, dtype=torch.float64)
    _, log_det = layer(x)
    for row in range(5):
        sign, expected = torch.linalg.slogdet(_jacobian(layer, x[row]))
        assert sign != 0
        torch.testing.assert_close(log_det[row], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("order", ["sequential", "reverse", "random"])
def test_made_transform_jacobian_is_triangular_in_its_order(order):
    transform, permutation = _made_transform(order, seed=3)
    jacobian = _jacobian(transform, torch.randn(D, dtype=torch.float64))
    in_order = jacobian[permutation][:, permutation]
    assert not torch.triu(in_order, diagonal=1).abs().sum()
    # Unit-lower-triangular up to the diagonal scales exp(-alpha) > 0.
    assert (torch.diagonal(in_order) > 0).all()
    degrees = input_degrees(permutation)
    assert degrees[permutation].tolist() == list(range(1, D + 1))


def test_soft_clamp_bounds_the_log_scale_and_is_the_identity_near_zero():
    x = torch.tensor([-1e6, -50.0, -0.1, 0.0, 0.1, 50.0, 1e6], dtype=torch.float64)
    y = soft_clamp(x)
    assert (y.abs() <= LOG_SCALE_BOUND).all()
    torch.testing.assert_close(y[2:5], x[2:5], rtol=1e-3, atol=0)
    assert torch.all(torch.diff(y) >= 0)


def test_huge_inputs_give_finite_log_determinants():
    transform, _ = _made_transform()
    _, log_det = transform(torch.full((2, D), 1e12, dtype=torch.float64))
    assert torch.isfinite(log_det).all()
    assert (log_det.abs() <= D * LOG_SCALE_BOUND).all()
