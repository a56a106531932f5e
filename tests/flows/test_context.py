"""Context through every transform: a conditional flow is a density p(x | c) for each c."""

import numpy as np
import pytest
import torch

from skmaf.flows import (
    MADE,
    AffineCoupling,
    build_made_mog,
    build_maf,
    build_realnvp,
    make_order,
)
from skmaf.flows.made import input_degrees

N_CONTEXT = 3


def _seeded():
    return torch.Generator().manual_seed(0)


BUILDERS = {
    "MAF": lambda d: build_maf(d, 3, 2, 16, n_context_features=N_CONTEXT, generator=_seeded()),
    "MAF-MoG": lambda d: build_maf(d, 2, 1, 16, n_components=3,
                                   n_context_features=N_CONTEXT, generator=_seeded()),
    "MADE-MoG": lambda d: build_made_mog(d, 2, 16, 4, n_context_features=N_CONTEXT,
                                         generator=_seeded()),
    "RealNVP": lambda d: build_realnvp(d, 3, 1, 16, n_context_features=N_CONTEXT,
                                       generator=_seeded()),
}


def _conditional(name, n_features):
    """A float64 conditional flow in evaluation mode, weights off their initial values
    (so that the context matters visibly), batch norm frozen on data with contexts."""
    flow = BUILDERS[name](n_features)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    x = torch.randn(300, n_features, generator=generator)
    context = torch.randn(300, N_CONTEXT, generator=generator)
    flow.freeze_statistics(x, context)
    return flow.double().eval()


def _grid(n_features):
    """Quadrature points wide enough for the densities of :func:`_conditional`."""
    if n_features == 1:
        axis = torch.linspace(-30.0, 30.0, 6001, dtype=torch.float64)
        return axis[:, None], [axis]
    axis = torch.linspace(-12.0, 12.0, 601, dtype=torch.float64)
    mesh = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1), [axis, axis]


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("n_features", [1, 2])
def test_the_density_integrates_to_one_for_each_context(name, n_features):
    flow = _conditional(name, n_features)
    points, axes = _grid(n_features)
    for seed in range(3):
        context = torch.randn(1, N_CONTEXT, generator=torch.Generator().manual_seed(10 + seed),
                              dtype=torch.float64).expand(len(points), -1)
        with torch.no_grad():
            density = flow.log_prob(points, context).exp()
        density = density.reshape([len(axis) for axis in axes])
        for axis in reversed(axes):
            density = torch.trapezoid(density, axis, dim=-1)
        assert float(density) == pytest.approx(1.0, abs=2e-3), (seed, float(density))


@pytest.mark.parametrize("name", BUILDERS)
def test_changing_the_context_changes_the_density(name):
    flow = _conditional(name, 2)
    x = torch.randn(20, 2, dtype=torch.float64)
    contexts = torch.randn(2, 20, N_CONTEXT, dtype=torch.float64)
    with torch.no_grad():
        first, second = (flow.log_prob(x, c) for c in contexts)
    assert (first - second).abs().min() > 1e-6


@pytest.mark.parametrize("name", ["MAF", "RealNVP"])
def test_inverse_undoes_forward_for_the_same_context(name):
    flow = _conditional(name, 3)
    x = torch.randn(16, 3, dtype=torch.float64)
    context = torch.randn(16, N_CONTEXT, dtype=torch.float64)
    with torch.no_grad():
        u = flow.to_base(x, context)
        torch.testing.assert_close(flow.from_base(u, context), x, rtol=0, atol=1e-10)
        samples = flow.sample(16, np.random.RandomState(0), context=context)
    assert samples.shape == (16, 3) and torch.isfinite(samples).all()


@pytest.mark.parametrize("n_hidden_layers", [1, 2, 3])
def test_a_conditional_made_is_autoregressive_in_x_and_sees_the_context_everywhere(
        n_hidden_layers):
    # Tanh units: a ReLU MADE can, at a given point, have every path from the
    # context to an output switched off, which says nothing about the masks.
    order = make_order("random", 5, _seeded())
    made = MADE(5, n_hidden_layers, 24, n_params=2, order=order, activation="tanh",
                n_context_features=2, generator=_seeded()).double()
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 5, dtype=torch.float64, generator=generator)
    context = torch.randn(1, 2, dtype=torch.float64, generator=generator)
    d_x = torch.autograd.functional.jacobian(lambda v: made(v, context), x)[0, :, :, 0, :]
    d_context = torch.autograd.functional.jacobian(lambda c: made(x, c), context)[0, :, :, 0, :]
    degrees = input_degrees(order)
    for i in range(5):
        for j in range(5):
            if degrees[j] >= degrees[i]:  # x_j does not come before x_i in the order
                assert torch.all(d_x[:, i, j] == 0), (i, j)
        # Every conditional, the first in the order included, depends on the context.
        assert torch.all(d_context[:, i, :].abs().sum(dim=-1) > 0), i


def test_every_hidden_layer_gets_the_context():
    made = MADE(3, 3, 8, n_params=2, order=np.arange(3), n_context_features=4,
                generator=_seeded())
    assert [tuple(layer.weight.shape) for layer in made.context_layers] == [(8, 4)] * 3


def test_a_conditional_flow_needs_its_context_and_an_unconditional_one_refuses_one():
    conditional = BUILDERS["MAF"](2).eval()
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="with a context input"):
        conditional.log_prob(x)
    with pytest.raises(ValueError, match=r"context must have shape \(4, 3\)"):
        conditional.log_prob(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="without a context input"):
        build_maf(2, 1, 1, 8).log_prob(x, torch.randn(4, 3))
    coupling = AffineCoupling(np.array([True, False]), 1, 8, n_context_features=3)
    with pytest.raises(ValueError, match="takes 3 context features"):
        coupling(x)


@pytest.mark.parametrize("name", BUILDERS)
def test_unconditional_flows_have_no_context_layers_and_the_same_state_dict_keys(name):
    unconditional = {"MAF": lambda: build_maf(2, 3, 2, 16), "MAF-MoG":
                     lambda: build_maf(2, 2, 1, 16, n_components=3),
                     "MADE-MoG": lambda: build_made_mog(2, 2, 16, 4),
                     "RealNVP": lambda: build_realnvp(2, 3, 1, 16)}[name]()
    assert not any("context" in key for key in unconditional.state_dict())
