"""Appendix-B batch norm: minibatch statistics in training, frozen ones in evaluation."""

import torch

from skmaf.flows import BatchNorm


def test_training_mode_normalises_each_batch():
    layer = BatchNorm(3).double()
    with torch.no_grad():
        layer.log_gamma.fill_(0.7)
        layer.beta.fill_(-2.0)
    x = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([5.0, 0.1, 2.0]) + 7
    u, log_det = layer.train()(x)
    torch.testing.assert_close(u.mean(0), torch.full((3,), -2.0, dtype=torch.float64))
    var = x.var(0, correction=0)
    gamma = torch.exp(torch.tensor(0.7, dtype=torch.float64))
    expected_std = gamma * torch.sqrt(var / (var + layer.eps))
    torch.testing.assert_close(u.std(0, correction=0), expected_std)
    expected = (0.7 - 0.5 * torch.log(x.var(0, correction=0) + layer.eps)).sum()
    torch.testing.assert_close(log_det, expected.expand(500))


def test_frozen_statistics_are_the_whole_set_statistics():
    layer = BatchNorm(2).double()
    x = torch.randn(1000, 2, dtype=torch.float64) * 3 + 1
    layer.freeze_statistics(x)
    torch.testing.assert_close(layer.mean, x.mean(0))
    torch.testing.assert_close(layer.var, x.var(0, correction=0))


def test_evaluation_does_not_depend_on_the_batch():
    layer = BatchNorm(2).double()
    layer.freeze_statistics(torch.randn(100, 2, dtype=torch.float64))
    layer.eval()
    x = torch.randn(10, 2, dtype=torch.float64)
    u_batch, det_batch = layer(x)
    for row in range(10):
        u_row, det_row = layer(x[row : row + 1])
        torch.testing.assert_close(u_row[0], u_batch[row], rtol=0, atol=0)
        torch.testing.assert_close(det_row[0], det_batch[row], rtol=0, atol=0)


def test_single_row_training_batch_is_finite():
    layer = BatchNorm(2).train()
    u, log_det = layer(torch.tensor([[1.0, 2.0]]))
    assert torch.isfinite(u).all() and torch.isfinite(log_det).all()
