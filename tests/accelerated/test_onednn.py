"""oneDNN products equal F.linear's, keep a row's bits whatever its batch, and fall back
to F.linear where they cannot run."""

import pickle

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from skmaf import MAFDensity
from skmaf._accelerated import onednn, private_ops

needs_onednn = pytest.mark.skipif(not private_ops.available("onednn_linear"),
                                  reason="torch has no working oneDNN linear here")


def _switch_off(monkeypatch):
    monkeypatch.setenv(private_ops.ONEDNN_SWITCH, "0")


def _product(n_rows, n_in, n_out, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n_rows, n_in, generator=generator),
            torch.randn(n_out, n_in, generator=generator),
            torch.randn(n_out, generator=generator))


@needs_onednn
@pytest.mark.parametrize("n_in, n_out", [(1, 16), (7, 100), (100, 100), (300, 17)])
def test_products_equal_f_linear_to_float32_rounding(n_in, n_out):
    x, weight, bias = _product(40, n_in, n_out)
    expected = F.linear(x, weight, bias)
    torch.testing.assert_close(onednn.linear(x, weight, bias), expected)
    torch.testing.assert_close(onednn.linear_relu(x, weight, bias), torch.relu(expected))
    # A transposed view as the weight: x @ W, the backward pass's product.
    grad = torch.randn(40, n_out)
    torch.testing.assert_close(onednn.linear(grad, weight.t()), grad @ weight)


@needs_onednn
@pytest.mark.parametrize("n_in, n_out", [(2, 16), (100, 100), (1000, 17)])
@pytest.mark.parametrize("relu", [False, True])
def test_a_rows_bits_do_not_depend_on_its_batch(n_in, n_out, relu):
    """Scoring's batch invariance rests on this (batches of a multiple of 8 rows)."""
    x, weight, bias = _product(1024, n_in, n_out)
    product = onednn.linear_relu if relu else onednn.linear
    whole = product(x, weight, bias)
    for n_rows in (8, 16, 1016):
        for start in (0, 8, 1024 - n_rows):
            part = product(x[start:start + n_rows], weight, bias)
            assert torch.equal(part, whole[start:start + n_rows]), (n_rows, start)
    shifted = torch.roll(torch.arange(1024), 8)
    assert torch.equal(product(x[shifted], weight, bias), whole[shifted])


def test_falls_back_to_f_linear_off_float32_and_with_an_empty_side():
    x, weight, bias = (t.double() for t in _product(8, 5, 3))
    assert torch.equal(onednn.linear(x, weight, bias), F.linear(x, weight, bias))
    assert torch.equal(onednn.linear_relu(x, weight, bias), F.linear(x, weight, bias).relu())
    # A coupling layer with nothing to condition on: the bias alone.
    empty_input, empty_weight = torch.zeros(8, 0), torch.zeros(3, 0)
    assert torch.equal(onednn.linear(empty_input, empty_weight, bias.float()),
                       bias.float().expand(8, 3))


def test_without_onednn_the_products_are_f_linears(monkeypatch):
    _switch_off(monkeypatch)
    x, weight, bias = _product(24, 100, 100)
    assert torch.equal(onednn.linear(x, weight, bias), F.linear(x, weight, bias))
    assert torch.equal(onednn.linear_relu(x, weight, bias), F.linear(x, weight, bias).relu())


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # torch's flags() says it
def test_torchs_own_switch_turns_it_off(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise",
                        lambda *args: calls.append(args), raising=False)
    x, weight, bias = _product(24, 100, 100)
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(onednn.linear(x, weight, bias), F.linear(x, weight, bias))
    assert not calls


def test_the_environment_switch_turns_it_off(monkeypatch):
    _switch_off(monkeypatch)
    assert not private_ops.available("onednn_linear")


@needs_onednn
def test_scores_are_the_same_with_and_without_onednn(monkeypatch):
    """With up to 100 inputs per product oneDNN's float32 results are MKL's to rounding;
    the estimator's scores (float64 base density) agree far below any modelling effect."""
    rng = np.random.RandomState(0)
    X = rng.randn(300, 6) @ rng.randn(6, 6)
    model = MAFDensity(2, n_hidden_units=16, max_iter=3, random_state=0).fit(X)
    with_onednn = model.score_samples(X)
    _switch_off(monkeypatch)
    model = pickle.loads(pickle.dumps(model))  # the scoring copy is made anew
    np.testing.assert_allclose(model.score_samples(X), with_onednn, rtol=1e-5, atol=1e-5)
