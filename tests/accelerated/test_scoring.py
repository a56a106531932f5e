"""The float32 scoring copy computes the flow's log-density, batch-invariantly."""

import pytest
import torch

from skmaf._accelerated.scoring import MIN_OUT_FEATURES, ROW_MULTIPLE
from skmaf._accelerated.scoring import scoring_copy as float32_copy
from skmaf.flows import (
    BatchNorm,
    MaskedAffineAutoregressive,
    build_made_mog,
    build_maf,
    build_realnvp,
)

BUILDERS = {
    "MAF": lambda d, h: build_maf(d, 2, 2, h, generator=torch.Generator().manual_seed(0)),
    "MAF-MoG": lambda d, h: build_maf(d, 2, 1, h, n_components=3,
                                      generator=torch.Generator().manual_seed(0)),
    "MADE-MoG": lambda d, h: build_made_mog(d, 2, h, 3,
                                            generator=torch.Generator().manual_seed(0)),
    "RealNVP": lambda d, h: build_realnvp(d, 2, 2, h, generator=torch.Generator().manual_seed(0)),
}


def _trained_looking(flow, n_features):
    """A float64 flow in evaluation mode with non-trivial weights and frozen statistics."""
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    flow.freeze_statistics(2 * torch.randn(200, n_features) + 1)
    return flow.double().eval()


def _score(copy, x):
    u, log_det = copy(x.float())
    return copy.base.log_prob(u.double()) + log_det.double()


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("n_features, n_units", [(1, 8), (2, 3), (5, 8), (11, 20)])
def test_copy_computes_the_flows_log_density_to_float32_rounding(name, n_features, n_units):
    flow = _trained_looking(BUILDERS[name](n_features, n_units), n_features)
    x = 2 * torch.randn(64, n_features, dtype=torch.float64)
    expected = flow.log_prob(x)
    with torch.no_grad():
        got = _score(float32_copy(flow), x)
    torch.testing.assert_close(got, expected, rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("name", BUILDERS)
def test_copy_leaves_the_flow_untouched(name):
    flow = _trained_looking(BUILDERS[name](3, 8), 3)
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    float32_copy(flow)
    after = flow.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype
               for k in before)
    assert any(isinstance(t, (MaskedAffineAutoregressive, BatchNorm)) for t in flow.transforms) \
        or name == "MADE-MoG"


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("n_features, n_units", [(2, 8), (3, 5), (6, 12), (9, 30)])
def test_a_row_scores_the_same_bits_in_any_batch(name, n_features, n_units):
    """Row by row, in batches padded to a multiple of ROW_MULTIPLE rows, at any position."""
    copy = float32_copy(_trained_looking(BUILDERS[name](n_features, n_units), n_features))
    x = torch.randn(3 * ROW_MULTIPLE * 5, n_features)

    def padded_score(rows):
        n_padding = -len(rows) % ROW_MULTIPLE
        padded = torch.cat([rows, rows.new_zeros(n_padding, n_features)])
        with torch.no_grad():
            return _score(copy, padded)[: len(rows)]

    whole = padded_score(x)
    for start, stop in [(0, 1), (7, 8), (3, 20), (17, 50), (1, len(x))]:
        torch.testing.assert_close(padded_score(x[start:stop]), whole[start:stop], rtol=0, atol=0)
    reversed_order = padded_score(x.flip(0)).flip(0)
    torch.testing.assert_close(reversed_order, whole, rtol=0, atol=0)


def test_narrow_layers_are_padded_and_their_padding_dropped():
    flow = _trained_looking(build_maf(3, 1, 1, 4, generator=torch.Generator().manual_seed(0)), 3)
    copy = float32_copy(flow)
    made = copy.transforms[0].made
    widths = [layer.weight.shape[0] for layer in made.layers]
    assert widths == [MIN_OUT_FEATURES, MIN_OUT_FEATURES]  # 4 hidden units, 2 x 3 outputs
    with torch.no_grad():
        out = made(torch.randn(8, 3))
    assert out.shape == (8, 2, 3)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("n_features, n_units", [(2, 3), (5, 20)])
def test_scoring_pass_gives_the_made_modules_own_bits(activation, n_features, n_units):
    # The scoring copy runs the MADE's products directly, activations in place:
    # the same numbers as its modules, and the input left alone.
    flow = build_maf(n_features, 2, 2, n_units, activation=activation,
                     generator=torch.Generator().manual_seed(0))
    copy = float32_copy(_trained_looking(flow, n_features))
    x = 2 * torch.randn(3 * ROW_MULTIPLE, n_features, dtype=torch.float64)
    before = x.clone()
    scoring_steps = [t for t in copy.transforms if hasattr(t, "_made_outputs")]
    assert len(scoring_steps) == 2
    with torch.no_grad():
        for step in scoring_steps:
            torch.testing.assert_close(step._made_outputs(x), step.made(x), rtol=0, atol=0)
    assert torch.equal(x, before)
