"""MADE's masks give an autoregressive network under every order."""

import numpy as np
import pytest
import torch

from skmaf.flows import MADE, made_masks, make_order
from skmaf.flows.made import hidden_degrees, input_degrees

ORDERS = ["sequential", "reverse", "random", [2, 0, 3, 1, 4]]


def _connectivity(masks):
    """Which output reaches which input: the product of the masks (D x D)."""
    product = masks[0].astype(int)
    for mask in masks[1:]:
        product = mask.astype(int) @ product
    return product > 0


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n_hidden_layers, n_hidden_units", [(1, 3), (1, 16), (2, 8), (3, 5)])
def test_mask_product_is_strictly_lower_triangular_in_the_order(
    order, n_hidden_layers, n_hidden_units
):
    permutation = make_order(order, 5, torch.Generator().manual_seed(0))
    reach = _connectivity(made_masks(permutation, n_hidden_layers, n_hidden_units))
    # Rows and columns sorted by the order: output k may see inputs 0..k-1 only.
    in_order = reach[np.ix_(permutation, permutation)]
    assert not np.triu(in_order).any()
    # With enough units, output k sees every earlier input: no connection is lost.
    if n_hidden_units >= 4:
        assert np.tril(in_order, k=-1)[np.tril_indices(5, k=-1)].all()


@pytest.mark.parametrize("order", ORDERS)
def test_gradient_of_each_output_vanishes_on_later_inputs(order):
    generator = torch.Generator().manual_seed(1)
    permutation = make_order(order, 5, generator)
    made = MADE(5, 2, 12, n_params=2, order=permutation, generator=generator).double()
    x = torch.randn(1, 5, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: made(v)[0], x)[:, :, 0, :]
    degrees = input_degrees(permutation)
    allowed = degrees[None, :] < degrees[:, None]  # output i may depend on input j
    for param in range(2):
        depends = jacobian[param].abs().numpy() > 0
        assert not (depends & ~allowed).any()
        assert depends[allowed].any()


def test_hidden_units_are_never_dead():
    for n_features, n_units in [(2, 5), (5, 3), (7, 40)]:
        degrees = hidden_degrees(n_features, n_units)
        assert degrees.min() >= 1 and degrees.max() <= n_features - 1
        masks = made_masks(np.arange(n_features), 1, n_units)
        assert masks[0].any(axis=1).all(), "every unit has an input"
        assert masks[1].any(axis=0).all(), "every unit reaches an output"


def test_one_feature_made_is_a_learned_constant():
    made = MADE(1, 2, 4, n_params=2, order=np.array([0]), generator=torch.Generator())
    out = made(torch.tensor([[-3.0], [0.0], [5.0]]))
    assert out.shape == (3, 2, 1)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])


def test_context_input_conditions_every_output_but_keeps_autoregression():
    generator = torch.Generator().manual_seed(0)
    # tanh, not relu: a dead relu would hide a connection that the masks do make.
    made = MADE(3, 1, 10, n_params=2, order=np.arange(3), activation="tanh",
                n_context_features=2, generator=generator).double()
    x = torch.randn(1, 3, dtype=torch.float64)
    context = torch.randn(1, 2, dtype=torch.float64)
    d_context = torch.autograd.functional.jacobian(lambda c: made(x, c), context)
    assert (d_context.abs().sum(dim=(-2, -1)) > 0).all()
    d_x = torch.autograd.functional.jacobian(lambda v: made(v, context)[0, 0], x)[..., 0, :]
    assert not torch.triu(d_x).abs().sum()
    with pytest.raises(ValueError, match="context"):
        made(x)


@pytest.mark.parametrize("bad", [[0, 1], [0, 0, 1], [1, 2, 3], [[0, 1, 2]], [0.0, 1.0, 2.0]])
def test_invalid_explicit_order_is_rejected(bad):
    with pytest.raises(ValueError, match="permutation"):
        make_order(bad, 3)


def test_random_order_comes_from_the_generator():
    first = make_order("random", 20, torch.Generator().manual_seed(3))
    again = make_order("random", 20, torch.Generator().manual_seed(3))
    other = make_order("random", 20, torch.Generator().manual_seed(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(np.sort(first), np.arange(20))


@pytest.mark.parametrize("n_features, n_hidden_layers, n_context",
                         [(1, 1, 0), (5, 2, 0), (6, 3, 2)])
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_sequential_evaluation_equals_the_d_pass_fixed_point(n_features, n_hidden_layers,
                                                             n_context, order):
    """Computing each hidden unit once gives what D full passes of the MADE give."""
    generator = torch.Generator().manual_seed(5)
    permutation = make_order(order, n_features, generator)
    made = MADE(n_features, n_hidden_layers, 7, n_params=2, order=permutation, activation="tanh",
                n_context_features=n_context, generator=generator).double()
    context = torch.randn(4, n_context, dtype=torch.float64) if n_context else None
    noise = torch.randn(4, n_features, dtype=torch.float64)

    def decide(i, params):
        return noise[:, i] * torch.exp(torch.tanh(params[:, 1])) + params[:, 0]

    with torch.no_grad():
        fast = made.sample_sequentially(decide, 4, like=noise, context=context)
        reference = torch.zeros_like(noise)
        for _ in range(n_features):
            params = made(reference, context)
            reference = noise * torch.exp(torch.tanh(params[:, 1])) + params[:, 0]
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)


def test_sequential_evaluation_with_degrees_that_have_no_units():
    # 3 hidden units for 8 inputs: degrees 4 to 7 have no unit in either layer.
    generator = torch.Generator().manual_seed(2)
    permutation = make_order("random", 8, generator)
    made = MADE(8, 2, 3, n_params=2, order=permutation, generator=generator).double()
    noise = torch.randn(5, 8, dtype=torch.float64)

    def decide(i, params):
        return noise[:, i] * torch.exp(torch.tanh(params[:, 1])) + params[:, 0]

    with torch.no_grad():
        fast = made.sample_sequentially(decide, 5, like=noise)
        reference = torch.zeros_like(noise)
        for _ in range(8):
            params = made(reference)
            reference = noise * torch.exp(torch.tanh(params[:, 1])) + params[:, 0]
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-12)



@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_sequential_evaluation_gives_the_same_samples_with_autograd_on(activation):
    # Sampling fills its tensors in place, so it runs without autograd whatever
    # the caller's mode: the same samples, no graph.
    generator = torch.Generator().manual_seed(3)
    made = MADE(5, 2, 9, n_params=2, order=make_order("random", 5, generator),
                activation=activation, n_context_features=2, generator=generator).double()
    context = torch.randn(6, 2, dtype=torch.float64)
    noise = torch.randn(6, 5, dtype=torch.float64)

    def decide(i, params):
        return noise[:, i] * torch.exp(torch.tanh(params[:, 1])) + params[:, 0]

    with torch.no_grad():
        expected = made.sample_sequentially(decide, 6, like=noise, context=context)
    with torch.enable_grad():
        samples = made.sample_sequentially(decide, 6, like=noise, context=context)
    assert torch.equal(samples, expected) and not samples.requires_grad
