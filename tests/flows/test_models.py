"""build_maf assembles the paper's model; the torch layer stands alone."""

import ast
import io
from pathlib import Path

import numpy as np
import torch

import skmaf.flows
from skmaf.flows import BatchNorm, MaskedAffineAutoregressive, build_maf
from skmaf.flows.made import input_degrees

ALLOWED_IMPORTS = {"__future__", "copy", "dataclasses", "functools", "itertools", "math",
                   "numpy", "os", "torch", "typing"}


def _mades(flow):
    return [t for t in flow.transforms if isinstance(t, MaskedAffineAutoregressive)]


def test_orders_are_reversed_between_layers_and_batch_norm_follows_each_made():
    flow = build_maf(5, 4, 1, 8, input_order="sequential", generator=torch.Generator())
    orders = [made.made.order.tolist() for made in _mades(flow)]
    assert orders == [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]] * 2
    kinds = [type(t) for t in flow.transforms]
    assert kinds == [MaskedAffineAutoregressive, BatchNorm] * 4
    without = build_maf(5, 2, 1, 8, batch_norm=False)
    assert not any(isinstance(t, BatchNorm) for t in without.transforms)


def test_random_order_draws_a_fresh_order_per_made():
    flow = build_maf(8, 3, 1, 8, input_order="random", generator=torch.Generator().manual_seed(0))
    orders = {tuple(made.made.order.tolist()) for made in _mades(flow)}
    assert len(orders) == 3


def test_log_prob_shape_gradients_and_samples():
    flow = build_maf(3, 2, 2, 8, generator=torch.Generator().manual_seed(0))
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    log_prob = flow.train()(x)[1]
    assert log_prob.shape == (16,)
    flow.log_prob(x).mean().backward()
    last_shift = f"transforms.{len(flow.transforms) - 1}.beta"
    for name, parameter in flow.named_parameters():
        assert parameter.grad is not None, name
        if name == last_shift:
            # The loss's gradient in the last batch norm's shift is the batch mean
            # of u, which minibatch statistics make that shift itself: 0 here.
            torch.testing.assert_close(parameter.grad, torch.zeros(3), rtol=0, atol=1e-6)
        else:
            assert parameter.grad.abs().sum() > 0, name
    flow.freeze_statistics(x)
    assert flow.sample(7, np.random.RandomState(0)).shape == (7, 3)


def test_log_prob_is_base_log_prob_plus_log_det():
    flow = build_maf(3, 2, 1, 8, generator=torch.Generator().manual_seed(0)).double().eval()
    x = torch.randn(10, 3, dtype=torch.float64)
    u, log_det = flow(x)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1) + log_det
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_torch_save_round_trip():
    flow = build_maf(3, 2, 1, 8, generator=torch.Generator().manual_seed(0)).eval()
    buffer = io.BytesIO()
    torch.save(flow, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    x = torch.randn(5, 3)
    torch.testing.assert_close(loaded.log_prob(x), flow.log_prob(x), rtol=0, atol=0)


def test_building_does_not_touch_the_global_torch_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_maf(4, 3, 2, 16, input_order="random", generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(torch.rand(3), expected)


def test_torch_layer_does_not_import_scikit_learn():
    """skmaf.flows must stay usable as a plain torch library."""
    flows_dir = Path(skmaf.flows.__file__).parent
    for path in flows_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {name}"


def test_the_reference_imports_no_accelerator_and_calls_no_private_torch_op():
    """The accelerator is fenced off: the reference model neither imports it nor
    uses what it exists for (private ops, rebound parameter data)."""
    flows_dir = Path(skmaf.flows.__file__).parent
    for path in flows_dir.glob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                assert node.module in (None, "exceptions") or node.level == 1, path.name
                assert "_accelerated" not in (node.module or ""), path.name
        for private in ("torch.ops", "torch._", "_foreach", ".data = "):
            assert private not in source, (path.name, private)


def test_fine_tuning_the_module_with_torch_optim_keeps_it_autoregressive():
    """A masked layer applies its mask itself: any optimiser keeps each MADE's
    outputs independent of the inputs at and after them in its order."""
    flow = build_maf(4, 2, 1, 16, batch_norm=False, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(flow.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        (-flow.log_prob(torch.randn(32, 4)).mean()).backward()
        optimizer.step()
    with torch.no_grad():  # whatever else a user does to the weights (noise, pruning, ...)
        for parameter in flow.parameters():
            parameter.add_(torch.randn_like(parameter))
    made = flow.transforms[0].made
    assert all((layer.weight[layer.mask == 0] != 0).all() for layer in made.layers)
    x = torch.randn(1, 4)
    jacobian = torch.autograd.functional.jacobian(made, x)[0, :, :, 0, :]  # (params, out, in)
    degrees = input_degrees(made.order.numpy())
    for i in range(4):
        for j in range(4):
            if degrees[j] >= degrees[i]:
                assert torch.all(jacobian[:, i, j] == 0), (i, j)
