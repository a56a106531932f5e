"""The defensive Gaussian base: its density, gradient, Rosenblatt map and draws in
closed form."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from skmaf.flows import DefensiveNormal, MADEMoG, StandardNormal, build_maf, build_realnvp

WEIGHT, SCALE = 0.01, 10.0


def _closed_form_log_density(u):
    """``log[(1 - w) N(u; 0, I) + w N(u; 0, s^2 I)]`` per row."""
    narrow = np.log1p(-WEIGHT) + stats.norm.logpdf(u).sum(axis=1)
    wide = np.log(WEIGHT) + stats.norm.logpdf(u, scale=SCALE).sum(axis=1)
    return np.logaddexp(narrow, wide)


@pytest.fixture
def base():
    return DefensiveNormal(3, WEIGHT, SCALE).double()


def test_log_prob_is_the_two_component_mixture(base):
    u = np.random.RandomState(0).standard_t(2, size=(50, 3)) * 5
    u[0] = [300.0, -1e4, 0.0]  # where N(0, I) alone would charge 5e7 nats
    log_p = base.log_prob(torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(log_p, _closed_form_log_density(u), rtol=1e-12)
    # No lower than the wide component alone: the stated bound ...
    wide_alone = math.log(WEIGHT) + stats.norm.logpdf(u, scale=SCALE).sum(axis=1)
    assert (log_p >= wide_alone - 1e-12 * np.abs(wide_alone)).all()
    # ... and a decreasing function of |u|: the ranking N(0, I) gives.
    order = np.argsort(np.linalg.norm(u, axis=1))
    assert (np.diff(log_p[order]) <= 0).all()


def test_it_integrates_to_one():
    """In two dimensions, on a grid wide enough for the wide component."""
    base = DefensiveNormal(2, WEIGHT, SCALE).double()
    axis = torch.linspace(-120, 120, 2401, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    density = base.log_prob(grid).exp().reshape(len(axis), len(axis))
    mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert abs(float(mass) - 1.0) < 1e-6


def test_score_is_the_gradient_of_the_log_density(base):
    u = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = (u * torch.tensor([1.0, 5.0, 40.0], dtype=torch.float64)).requires_grad_(True)
    (expected,) = torch.autograd.grad(base.log_prob(u).sum(), u)
    log_p, score = base.log_prob_and_score(u.detach())
    torch.testing.assert_close(log_p, base.log_prob(u.detach()), rtol=1e-14, atol=0)
    torch.testing.assert_close(score, expected, rtol=1e-12, atol=1e-14)


def test_conditional_cdfs_are_those_of_the_joint_density(base):
    """Coordinate 1's CDF given coordinate 0, against numerical integration of the
    joint density over coordinate 1 (coordinate 2 integrates out)."""
    two = DefensiveNormal(2, WEIGHT, SCALE).double()
    for u0, u1 in [(0.3, -0.7), (6.0, 2.0), (-40.0, 25.0)]:
        grid = torch.linspace(-300, u1, 200_001, dtype=torch.float64)
        rows = torch.stack([torch.full_like(grid, u0), grid], dim=1)
        below = torch.trapezoid(two.log_prob(rows).exp(), grid)
        full = torch.linspace(-300, 300, 400_001, dtype=torch.float64)
        rows = torch.stack([torch.full_like(full, u0), full], dim=1)
        marginal = torch.trapezoid(two.log_prob(rows).exp(), full)
        cdf = two.conditional_cdf(torch.tensor([[u0, u1]], dtype=torch.float64))[0, 1]
        assert abs(float(cdf - below / marginal)) < 1e-6


def test_standard_normal_map_round_trips_and_is_increasing(base):
    u = torch.tensor([[-1e4, -300.0, -5.0], [-0.5, 0.0, 0.5], [5.0, 300.0, 1e4]],
                     dtype=torch.float64)
    z = base.to_standard_normal(u)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(base.from_standard_normal(z), u, rtol=1e-10, atol=1e-10)
    # Coordinate 0 has nothing before it: its map is increasing in u_0 alone.
    line = torch.linspace(-1e3, 1e3, 1001, dtype=torch.float64)[:, None].expand(-1, 3)
    assert (base.to_standard_normal(line.contiguous())[:, 0].diff() > 0).all()


def test_draws_map_onto_independent_standard_normals(base):
    """Exact draws, mapped by the Rosenblatt map, are i.i.d. N(0, 1); a fraction ``w``
    of rows comes from the wide component."""
    like = torch.zeros((), dtype=torch.float64)
    draws = base.sample(40_000, np.random.RandomState(0), like=like)
    assert draws.shape == (40_000, 3)
    z = base.to_standard_normal(draws).numpy()
    for column in z.T:
        assert stats.kstest(column, "norm").pvalue > 1e-3
    assert np.abs(np.corrcoef(z.T)[np.triu_indices(3, 1)]).max() < 4 / math.sqrt(40_000)
    wide_rows = float((draws.abs() > 6).any(dim=1).double().mean())
    expected = WEIGHT * (1 - (1 - 2 * stats.norm.sf(6, scale=SCALE)) ** 3)
    assert abs(wide_rows - expected) < 4 * math.sqrt(expected / 40_000)


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.1])
def test_weight_outside_the_open_unit_interval_is_refused(weight):
    with pytest.raises(ValueError, match="tail_weight"):
        DefensiveNormal(2, weight)


def test_builders_choose_the_base_by_tail_weight():
    assert type(build_maf(3, 2, 1, 8).base) is StandardNormal
    assert type(build_realnvp(3, 2, 1, 8, tail_weight=0.0).base) is StandardNormal
    maf = build_maf(3, 2, 1, 8, tail_weight=1e-3)
    assert type(maf.base) is DefensiveNormal and maf.base.tail_weight == 1e-3
    assert type(build_realnvp(3, 2, 1, 8, tail_weight=1e-3).base) is DefensiveNormal
    # A mixture base keeps its own components.
    assert type(build_maf(3, 2, 1, 8, n_components=3, tail_weight=1e-3).base) is MADEMoG
