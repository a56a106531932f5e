"""MADE MoG: exact mixture densities, autoregressive structure, sampling, and its
Rosenblatt map onto N(0, I)."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import trapezoid

from skmaf.flows import MADEMoG, build_maf, make_order, mixture_log_prob
from skmaf.flows.autoregressive import LOG_SCALE_BOUND
from skmaf.flows.made import input_degrees
from skmaf.flows.mixture import mixture_normal_score, normal_quantile_of_log


def test_mixture_log_prob_matches_a_hand_computed_mixture():
    weights = np.array([0.2, 0.5, 0.3])
    means = np.array([-1.0, 0.5, 3.0])
    scales = np.array([0.5, 1.0, 2.0])
    x = np.linspace(-5, 8, 27)
    expected = np.log(sum(w * stats.norm.pdf(x, m, s) for w, m, s in zip(weights, means, scales)))
    expand = lambda a: torch.tensor(a, dtype=torch.float64)[None, :, None].expand(27, 3, 1)  # noqa: E731
    got = mixture_log_prob(torch.tensor(x)[:, None], expand(np.log(weights) + 7.0),
                           expand(means), expand(np.log(scales)))
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-12)


def test_tiny_made_mog_with_known_weights_is_the_mixture_it_encodes():
    """Zero every weight, set the output biases: each conditional is a fixed mixture."""
    model = MADEMoG(2, 1, 4, n_components=2, order=np.arange(2)).double()
    logits, means, log_scales = [0.0, np.log(3.0)], [-1.0, 2.0], [np.log(0.5), 0.0]
    with torch.no_grad():
        for layer in model.made.layers:
            layer.weight.zero_()
        # The MADE's raw log-scales pass through soft_clamp: invert it.
        raw_log_scales = list(LOG_SCALE_BOUND * np.arctanh(np.array(log_scales) / LOG_SCALE_BOUND))
        bias = torch.tensor(logits + means + raw_log_scales, dtype=torch.float64)
        model.made.layers[-1].bias.copy_(bias.repeat_interleave(2))  # same for both inputs
    x = np.random.RandomState(0).normal(size=(10, 2)) * 2
    one_d = lambda v: np.log(0.25 * stats.norm.pdf(v, -1, 0.5) + 0.75 * stats.norm.pdf(v, 2, 1))  # noqa: E731
    expected = one_d(x[:, 0]) + one_d(x[:, 1])
    np.testing.assert_allclose(model.log_prob(torch.tensor(x)).detach().numpy(), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("order", ["sequential", "reverse", "random"])
def test_each_conditional_depends_only_on_earlier_inputs(order):
    generator = torch.Generator().manual_seed(0)
    permutation = make_order(order, 4, generator)
    model = MADEMoG(4, 2, 16, 3, permutation, generator=generator).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    # d log p(x_i | x_<i) / d x_j must vanish for j after i in the order.
    conditionals = lambda v: mixture_log_prob(v, *model.mixture_parameters(v))[0]  # noqa: E731
    jacobian = torch.autograd.functional.jacobian(conditionals, x)[:, 0, :]
    degrees = input_degrees(permutation)
    later = degrees[None, :] > degrees[:, None]
    assert not jacobian.numpy()[later].any()
    assert np.all(np.diag(jacobian.numpy()) != 0)


def test_made_mog_density_integrates_to_one_in_2d():
    model = MADEMoG(2, 1, 16, 4, np.arange(2), generator=torch.Generator().manual_seed(1))
    model = model.double()
    grid = np.linspace(-12, 12, 801)
    points = torch.tensor(np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2))
    with torch.no_grad():
        density = model.log_prob(points).exp().numpy().reshape(801, 801)
    assert trapezoid(trapezoid(density, grid, axis=1), grid) == pytest.approx(1.0, abs=1e-4)


def test_samples_follow_the_model_density():
    """A 1-D MADE MoG is a fixed mixture: its samples must pass a KS test against it."""
    model = MADEMoG(1, 1, 4, 3, np.arange(1), generator=torch.Generator().manual_seed(2))
    model = model.double()
    with torch.no_grad():
        samples = model.sample(4000, np.random.RandomState(0), like=torch.zeros(1).double())
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        cdf = np.cumsum(model.log_prob(grid).exp().numpy()) * 0.001
    cdf_at = lambda v: np.interp(v, grid[:, 0].numpy(), cdf)  # noqa: E731
    assert stats.kstest(samples[:, 0].numpy(), cdf_at).pvalue > 0.01


def test_maf_mog_has_a_mixture_base():
    flow = build_maf(3, 2, 1, 8, n_components=4, generator=torch.Generator())
    assert isinstance(flow.base, MADEMoG)
    # The base MADE continues the reversal pattern after the two MADEs.
    assert flow.base.made.order.tolist() == [0, 1, 2]


def test_normal_quantile_of_log_matches_scipy_down_to_the_far_tail():
    """Where exp(log p) underflows float64 the quantile still comes out exact (scipy's
    ``norm.isf``-free check: ``log_ndtr`` of the result gives back ``log p``)."""
    log_p = torch.tensor([-1e-3, -0.7, -5.0, -300.0, -699.0], dtype=torch.float64)
    np.testing.assert_allclose(normal_quantile_of_log(log_p).numpy(),
                               stats.norm.ppf(np.exp(log_p.numpy())), rtol=1e-12)
    far = torch.tensor([-701.0, -5e3, -1e6], dtype=torch.float64)
    z = normal_quantile_of_log(far)
    np.testing.assert_allclose(stats.norm.logcdf(z.numpy()), far.numpy(), rtol=1e-12)


def _fixed_mixture(n_rows):
    """A 1-D three-component mixture, its parameters laid out (n_rows, 3, 1)."""
    weights, means, scales = np.array([0.2, 0.5, 0.3]), np.array([-1.0, 0.5, 3.0]), np.array(
        [0.5, 1.0, 2.0])
    expand = lambda a: torch.tensor(a, dtype=torch.float64)[None, :, None].expand(  # noqa: E731
        n_rows, 3, 1)
    params = (expand(np.log(weights)), expand(means), expand(np.log(scales)))
    cdf = lambda v: sum(w * stats.norm.cdf(v, m, s)  # noqa: E731
                        for w, m, s in zip(weights, means, scales))
    sf = lambda v: sum(w * stats.norm.sf(v, m, s)  # noqa: E731
                       for w, m, s in zip(weights, means, scales))
    return params, cdf, sf


def test_mixture_normal_score_is_the_normal_quantile_of_the_cdf_in_both_tails():
    x = np.concatenate([np.linspace(-30, 40, 71), [-1e3, 1e3]])
    params, cdf, sf = _fixed_mixture(len(x))
    got = mixture_normal_score(torch.tensor(x)[:, None], *params)[:, 0].numpy()
    # Phi^-1 of the CDF below the median, -Phi^-1 of the survival above it: both exact.
    expected = np.where(cdf(x) < 0.5, stats.norm.ppf(cdf(x)), -stats.norm.ppf(sf(x)))
    finite = np.isfinite(expected)  # scipy's cdf underflows where the score does not
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-12)
    assert np.all(np.diff(got[:-2]) > 0) and np.all(np.isfinite(got))
    assert got[-2] < -100 and got[-1] > 100


def _made_mog(n_features, seed=0):
    generator = torch.Generator().manual_seed(seed)
    order = make_order("random", n_features, generator)
    return MADEMoG(n_features, 1, 16, 4, order, generator=generator).double().eval()


def test_rosenblatt_map_sends_the_models_samples_to_standard_normal():
    model = _made_mog(3)
    with torch.no_grad():
        samples = model.sample(3000, np.random.RandomState(0), like=torch.zeros(1).double())
        z = model.to_standard_normal(samples).numpy()
    for column in z.T:
        assert stats.kstest(column, "norm").pvalue > 0.01
    correlation = np.corrcoef(z.T)[np.triu_indices(3, 1)]
    assert np.all(np.abs(correlation) < 4 / np.sqrt(3000))


def test_rosenblatt_map_is_autoregressive_and_increasing_in_each_coordinate():
    """d z_i / d x_j vanishes after i in the order; d z_i / d x_i > 0 (a bijection)."""
    model = _made_mog(4, seed=1)
    x = torch.randn(1, 4, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(model.to_standard_normal, x)[0, :, 0, :]
    degrees = input_degrees(model.made.order)
    assert not jacobian.numpy()[degrees[None, :] > degrees[:, None]].any()
    assert np.all(np.diag(jacobian.numpy()) > 0)


def test_rosenblatt_map_inverts_exactly_in_the_tails_too():
    """Exact where the density is representable: in the bulk, and in each tail, where
    the score comes from log_ndtr and stays strictly increasing (here scores of -22
    and +26, where Phi rounds to 0 and 1)."""
    model = _made_mog(3, seed=2)
    x = torch.tensor(np.random.RandomState(3).normal(size=(50, 3)))
    x = torch.cat([x, torch.tensor([[30.0, -20.0, 0.0], [-25.0, 1.0, 40.0]], dtype=x.dtype)])
    with torch.no_grad():
        z = model.to_standard_normal(x)
        back = model.from_standard_normal(z)
    assert z.abs().max() > 20
    np.testing.assert_allclose(back.numpy(), x.numpy(), rtol=1e-10, atol=1e-10)
