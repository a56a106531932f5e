"""Planned sampling (each MADE unit computed once) draws what the reference's D passes draw."""

import numpy as np
import pytest
import torch

from skmaf._accelerated.sampling import sample_sequentially, sampling_flow
from skmaf.flows import (
    MADE,
    Flow,
    MaskedAffineAutoregressive,
    build_made_mog,
    build_maf,
    build_realnvp,
    make_order,
)

pytestmark = pytest.mark.every_path


def _perturbed(flow):
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape,
                                             generator=torch.Generator().manual_seed(3)))
    return flow.double().eval()


@pytest.mark.parametrize("n_context", [0, 2])
@pytest.mark.parametrize("n_features, n_hidden_layers, activation",
                         [(1, 1, "relu"), (2, 2, "tanh"), (5, 3, "relu"), (7, 1, "tanh")])
def test_the_plan_fills_in_what_the_d_passes_fill_in(n_features, n_hidden_layers, activation,
                                                     n_context):
    order = make_order("random", n_features, torch.Generator().manual_seed(1))
    made = _perturbed(MADE(n_features, n_hidden_layers, 11, n_params=2, order=order,
                           activation=activation, n_context_features=n_context,
                           generator=torch.Generator().manual_seed(0)))
    context = torch.randn(9, n_context, dtype=torch.float64) if n_context else None
    noise = torch.randn(9, n_features, dtype=torch.float64)

    def decide(i, params):  # an input's value from all of its conditional's parameters
        return params[:, 0] + torch.tanh(params[:, 1]) * noise[:, i]

    like = torch.zeros((), dtype=torch.float64)
    expected = made.sample_sequentially(decide, 9, like=like, context=context)
    torch.testing.assert_close(sample_sequentially(made, decide, 9, like=like, context=context),
                               expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("build", [
    lambda: build_maf(4, 3, 2, 12, generator=torch.Generator().manual_seed(0)),
    lambda: build_maf(4, 2, 1, 12, n_components=3, generator=torch.Generator().manual_seed(0)),
    lambda: build_made_mog(4, 2, 12, 3, generator=torch.Generator().manual_seed(0)),
    lambda: build_maf(3, 2, 1, 12, n_context_features=2,
                      generator=torch.Generator().manual_seed(0)),
])
def test_a_planned_flow_samples_and_inverts_like_the_reference(build):
    flow = _perturbed(build())
    flow.freeze_statistics(torch.randn(100, flow.base.made.n_features if hasattr(
        flow.base, "made") else flow.base.n_features, dtype=torch.float64),
        torch.randn(100, 2, dtype=torch.float64) if "context" in repr(flow) else None)
    planned = sampling_flow(flow)
    assert planned is not None
    made = next(t for t in [*flow.transforms, flow.base] if hasattr(t, "made")).made
    n_features = made.n_features
    context = torch.randn(6, 2, dtype=torch.float64) if "context" in repr(flow) else None
    with torch.no_grad():
        torch.testing.assert_close(planned.sample(6, np.random.RandomState(0), context),
                                   flow.sample(6, np.random.RandomState(0), context),
                                   rtol=1e-10, atol=1e-10)
        u = torch.randn(6, n_features, dtype=torch.float64)
        torch.testing.assert_close(planned.from_base(u, context), flow.from_base(u, context),
                                   rtol=1e-10, atol=1e-10)
    # It shares the flow's parameters rather than copying them.
    assert {id(p) for p in planned.parameters()} == {id(p) for p in flow.parameters()}


def test_flows_it_does_not_know_keep_the_reference():
    class Subclass(MaskedAffineAutoregressive):
        pass

    assert sampling_flow(build_realnvp(3, 2, 1, 8)) is None  # nothing sequential to plan
    made = MADE(3, 1, 8, 2, order=np.arange(3))
    flow = Flow([Subclass(made)], build_maf(3, 1, 1, 8).base)
    assert sampling_flow(flow) is None
