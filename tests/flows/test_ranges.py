"""The flow's tails: beyond the recorded training range every layer is affine.

Each conditioner sees its inputs clamped to the range recorded by
``freeze_statistics``, so far from the data ``u`` is affine in the distance and
the log-determinant constant: with a Gaussian base the log-density is exactly a
concave quadratic along any ray, at the slopes the flow has at the range's edge,
however wildly the networks would extrapolate.
"""

import pytest
import torch

from skmaf.flows import (
    MADE,
    MaskedAffineAutoregressive,
    build_made_mog,
    build_maf,
    build_realnvp,
    make_order,
)
from skmaf.flows.base import Flow, StandardNormal
from skmaf.flows.ranges import InputRange

BUILDERS = {
    "MAF": lambda d, g: build_maf(d, 3, 1, 16, generator=g),
    "MAF-MoG": lambda d, g: build_maf(d, 2, 1, 16, n_components=3, generator=g),
    "MADE-MoG": lambda d, g: build_made_mog(d, 1, 16, 3, generator=g),
    "RealNVP": lambda d, g: build_realnvp(d, 3, 1, 16, generator=g),
}


def _wild(name, data, spread=0.5):
    """A float64 flow with its weights moved off their initial values at random (its
    networks extrapolate steeply), statistics and input ranges frozen on ``data``."""
    flow = BUILDERS[name](data.shape[1], torch.Generator().manual_seed(0)).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(spread * torch.randn(parameter.shape, generator=generator,
                                                dtype=parameter.dtype))
    flow.freeze_statistics(data)
    return flow


def _rays(data, n_random=3):
    """(start, direction) pairs: out of the box through each column's maximum and
    minimum, and along random directions from the data's centre."""
    centre = data.mean(dim=0)
    low, high = data.amin(dim=0), data.amax(dim=0)
    rays = []
    for i in range(data.shape[1]):
        for sign, edge in ((1.0, high), (-1.0, low)):
            start = centre.clone()
            start[i] = edge[i]
            direction = torch.zeros_like(centre)
            direction[i] = sign
            rays.append((start, direction))
    generator = torch.Generator().manual_seed(2)
    for _ in range(n_random):
        direction = torch.randn(data.shape[1], generator=generator, dtype=data.dtype)
        rays.append((centre, direction / direction.norm()))
    return rays


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    x[:, 0] = -x[:, 0].exp()  # a long left tail, as in the tables where MAFs collapsed
    return x


@pytest.mark.parametrize("name", BUILDERS)
def test_far_rows_score_finite_decreasing_values(name, data):
    flow = _wild(name, data)
    span = (data.amax(dim=0) - data.amin(dim=0)).max()
    with torch.no_grad():
        for start, direction in _rays(data):
            distances = torch.tensor([1.0, 10.0, 100.0], dtype=data.dtype) * span
            log_p = flow.log_prob(start + distances[:, None] * direction)
            assert torch.isfinite(log_p).all()
            assert (log_p.diff() < 0).all()


@pytest.mark.parametrize("name", ["MAF", "RealNVP"])
def test_far_from_the_data_the_log_density_is_a_gaussian_tail(name, data):
    """Beyond every layer's range, u is affine in the distance t and the log-determinant
    constant: log p is exactly the concave quadratic through any three of its values,
    and no lower than the bound that the slope of u gives."""
    flow = _wild(name, data)
    span = (data.amax(dim=0) - data.amin(dim=0)).max()
    with torch.no_grad():
        for start, direction in _rays(data):
            t = torch.tensor([1e3, 2e3, 3e3, 4e3], dtype=data.dtype) * span
            x = start + t[:, None] * direction
            u, log_det = flow(x)
            log_p = flow.log_prob(x)
            torch.testing.assert_close(log_det, log_det[:1].expand(4), rtol=0, atol=1e-9)
            # Equal steps in t: an affine u has constant differences ...
            torch.testing.assert_close(u.diff(dim=0), (u[1:2] - u[:1]).expand(3, -1), rtol=1e-9,
                                       atol=1e-6)
            # ... so the third difference of a quadratic log p vanishes.
            third = log_p[3] - 3 * log_p[2] + 3 * log_p[1] - log_p[0]
            assert abs(third) <= 1e-9 * log_p.abs().max()
            slope = (u[1] - u[0]).norm() / (t[1] - t[0])
            bound = (log_p[0] - u[0].norm() * slope * (t - t[0])
                     - 0.5 * slope**2 * (t - t[0]) ** 2)
            assert (log_p >= bound - 1e-9 * log_p.abs()).all()


def test_a_step_beyond_its_range_keeps_the_conditioner_of_the_range_edge():
    """One MADE step: leaving the box along x_1 freezes every conditioner at the box
    edge, so u_1 moves with the scale of the edge and the later u_j do not move."""
    generator = torch.Generator().manual_seed(0)
    made = MADE(3, 1, 16, 2, make_order("sequential", 3), generator=generator).double()
    with torch.no_grad():
        for parameter in made.parameters():
            parameter.mul_(20.0)  # steep extrapolation, were nothing clamped
    step = MaskedAffineAutoregressive(made)
    data = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    step.freeze_statistics(data)
    step.eval()
    edge = data.mean(dim=0)
    edge[0] = data[:, 0].max()
    with torch.no_grad():
        beta, log_scale = step.shift_and_log_scale(edge[None])
        for t in (1.0, 10.0, 100.0):
            x = edge.clone()
            x[0] += t
            u, log_det = step(x[None])
            u_edge, log_det_edge = step(edge[None])
            torch.testing.assert_close(u[0, 0], x[0] * torch.exp(-log_scale[0, 0]) + beta[0, 0])
            torch.testing.assert_close(u[0, 1:], u_edge[0, 1:])
            torch.testing.assert_close(log_det, log_det_edge)


def test_training_mode_sees_the_inputs_unclamped_and_the_map_stays_invertible(data):
    flow = _wild("MAF", data)
    far = data[:5] * 50
    with torch.no_grad():
        u, _ = flow(far)
        torch.testing.assert_close(flow.from_base(u), far, rtol=1e-7, atol=1e-7)
        view = InputRange(3).double()
        view.record(data)
        view.train()
        assert torch.equal(view(far), far)
        view.eval()
        assert torch.equal(view(far), torch.clamp(far, data.amin(dim=0), data.amax(dim=0)))


def test_widening_takes_the_union_of_ranges():
    view = InputRange(2)
    view.record(torch.tensor([[0.0, 1.0], [1.0, 2.0]]))
    view.record(torch.tensor([[-1.0, 1.5]]), widen=True)
    assert view.low.tolist() == [-1.0, 1.0] and view.high.tolist() == [1.0, 2.0]


def test_an_unrecorded_range_changes_nothing():
    """A flow whose ranges were never recorded (e.g. loaded from a model saved before
    they existed) evaluates as before: every view is the identity."""
    generator = torch.Generator().manual_seed(0)
    made = MADE(2, 1, 8, 2, make_order("sequential", 2), generator=generator)
    flow = Flow([MaskedAffineAutoregressive(made)], StandardNormal(2)).eval()
    x = 1e3 * torch.randn(10, 2, generator=generator)
    assert torch.equal(made.input_range(x), x)
    assert torch.isfinite(flow.log_prob(x)).all()
