"""Real NVP's coupling layers: exact bijections, for any number of features."""

import numpy as np
import pytest
import torch

from skmaf.flows import AffineCoupling, alternating_masks, build_realnvp


@pytest.mark.parametrize("n_features", [1, 2, 3, 6])
def test_alternating_masks_transform_every_feature(n_features):
    masks = alternating_masks(n_features, 4)
    transformed = np.any([~mask for mask in masks], axis=0)
    assert transformed.all()
    assert all(np.array_equal(masks[k], ~masks[k + 1]) for k in range(3))


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_coupling_flow_is_an_exact_bijection_with_the_autograd_log_det(n_features):
    flow = build_realnvp(n_features, 4, 2, 8, generator=torch.Generator().manual_seed(0)).double()
    flow.freeze_statistics(torch.randn(64, n_features, dtype=torch.float64))
    x = torch.randn(6, n_features, dtype=torch.float64) * 2
    u, log_det = flow(x)
    torch.testing.assert_close(flow.from_base(u), x, rtol=0, atol=1e-10)
    for row in range(6):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[row])
        torch.testing.assert_close(log_det[row], torch.linalg.slogdet(jacobian)[1], atol=1e-10,
                                   rtol=0)


def test_coupling_passes_half_through_and_uses_tanh_and_relu_nets():
    mask = np.array([True, False, True, False])
    layer = AffineCoupling(mask, 2, 8, generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    u, _ = layer(x)
    torch.testing.assert_close(u[:, mask], x[:, mask], rtol=0, atol=0)
    assert not torch.allclose(u[:, ~mask], x[:, ~mask])
    activations = lambda net: {type(m).__name__ for m in net if not hasattr(m, "weight")}  # noqa: E731
    assert activations(layer.scale_net) == {"Tanh"}
    assert activations(layer.shift_net) == {"ReLU"}
    # The transformed half depends on the conditioning half only.
    jacobian = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    assert not jacobian[~mask][:, ~mask].fill_diagonal_(0).abs().sum()
