"""FlatAdam is torch's Adam: the fused kernel bit for bit, or its single-tensor formulas."""

import pytest
import torch

from skmaf._accelerated import private_ops
from skmaf._accelerated.adam import FlatAdam

pytestmark = pytest.mark.every_path


def _adam_pair():
    """The same two parameter groups (one with weight decay) under torch's fused Adam and
    under FlatAdam."""
    made = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(0)
        made.append([torch.nn.Parameter(torch.randn(50, generator=generator)),
                     torch.nn.Parameter(torch.randn(7, generator=generator))])
    reference, ours = made
    try:
        optimizer = torch.optim.Adam([{"params": [reference[0]], "weight_decay": 0.1},
                                      {"params": [reference[1]], "weight_decay": 0.0}],
                                     lr=0.01, fused=True)
    except RuntimeError:
        pytest.skip("this torch has no fused Adam on the CPU")
    return reference, optimizer, ours, FlatAdam([(ours[0], 0.1), (ours[1], 0.0)], lr=0.01)


def _step_both(reference, optimizer, ours, flat_adam, n_steps, generator):
    for _ in range(n_steps):
        for a, b in zip(reference, ours):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        optimizer.step()
        flat_adam.step()


def test_flat_adam_is_torchs_fused_adam_bit_for_bit(monkeypatch):
    monkeypatch.setenv(private_ops.ALL_OPS_SWITCH, "1")
    if not private_ops.available("fused_adam"):
        pytest.skip("the probe found no working fused Adam kernel")
    reference, optimizer, ours, flat_adam = _adam_pair()
    _step_both(reference, optimizer, ours, flat_adam, 5, torch.Generator().manual_seed(1))
    for index, (a, b) in enumerate(zip(reference, ours)):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(optimizer.state[a][key], flat_adam.state[index][key])
            assert optimizer.state[a][key].dtype == flat_adam.state[index][key].dtype


def test_flat_adam_without_the_fused_kernel_follows_torchs_formulas(monkeypatch):
    # CPU torch before 2.4 has no fused Adam: the single-tensor update stands in.
    monkeypatch.setenv(private_ops.ALL_OPS_SWITCH, "0")
    reference, optimizer, ours, flat_adam = _adam_pair()
    _step_both(reference, optimizer, ours, flat_adam, 5, torch.Generator().manual_seed(1))
    for a, b in zip(reference, ours):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
