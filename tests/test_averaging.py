"""Polyak averaging of the weights during training (skmaf/_training/averaging.py)."""

import numpy as np
import pytest
import torch

from skmaf import MAFDensity
from skmaf._accelerated.step import AcceleratedStep as TrainingStep
from skmaf._training import TrainingOptions, train_flow
from skmaf._training.averaging import WeightAverage
from skmaf.flows import build_maf
from skmaf.flows.layers import MaskedLinear

OPTIONS = dict(batch_size=10, learning_rate=1e-2, l2_penalty=0.0, n_iter_no_change=100, tol=0.0)


def _expected_decay(decay, t):
    return min(decay, (1 + t) / (10 + t))


def test_the_average_warms_up_then_decays_at_the_given_rate():
    weights = torch.zeros(3)
    average = WeightAverage([weights], decay=0.5)
    expected = weights.clone()
    for t in range(1, 21):  # the decay reaches 0.5 at t = 8
        weights.add_(torch.tensor([1.0, -2.0, 0.0]))  # an optimiser step
        average.update()
        decay = _expected_decay(0.5, t)
        expected = decay * expected + (1 - decay) * weights
        torch.testing.assert_close(average.average[0], expected)
    assert average.average[0][2] == 0  # zero throughout: exactly zero


def test_applied_swaps_the_average_in_and_restores_the_weights_even_on_error():
    weights = torch.tensor([1.0, 2.0])
    average = WeightAverage([weights], decay=0.9)
    weights.fill_(5.0)
    average.update()
    assert not torch.equal(average.average[0], weights)
    with pytest.raises(RuntimeError, match="inside"):
        with average.applied():
            torch.testing.assert_close(weights, average.average[0], rtol=0, atol=0)
            raise RuntimeError("inside")
    assert torch.equal(weights, torch.tensor([5.0, 5.0]))


def test_a_training_step_averages_its_iterates_and_the_masks_hold():
    flow = build_maf(3, 2, 1, 8, generator=torch.Generator().manual_seed(0))
    options = TrainingOptions(max_iter=1, early_stopping=False, ema_decay=0.9, **OPTIONS)
    step = TrainingStep(flow, options, 10)
    expected = [flat.detach().clone() for flat in step.parameters.flat]
    generator = torch.Generator().manual_seed(1)
    for t in range(1, 31):
        step(torch.randn(10, 3, generator=generator))
        decay = _expected_decay(0.9, t)
        expected = [decay * e + (1 - decay) * flat.detach()
                    for e, flat in zip(expected, step.parameters.flat)]
    for average, value in zip(step.average.average, expected):
        torch.testing.assert_close(average, value)
    last = [flat.detach().clone() for flat in step.parameters.flat]
    with step.average.applied():
        assert not all(torch.equal(a, b) for a, b in zip(step.parameters.flat, last))
        for layer in flow.modules():
            if isinstance(layer, MaskedLinear):
                assert torch.all(layer.weight[layer.mask == 0] == 0)
    step.close()


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_weights_kept_are_the_weights_validated(ema_decay):
    # Averaging validates the average and keeps it: the kept model scores the
    # validation rows at exactly the best validation score recorded.
    flow = build_maf(2, 2, 1, 8, generator=torch.Generator().manual_seed(0))
    z = torch.from_numpy(np.random.RandomState(0).normal(size=(100, 2)).astype(np.float32))
    options = TrainingOptions(max_iter=6, early_stopping=True, ema_decay=ema_decay, **OPTIONS)
    result = train_flow(flow, z[:80], z[80:], options, np.random.RandomState(0),
                        torch.device("cpu"))
    flow.freeze_statistics(z[:80])
    with torch.no_grad():
        score = flow.log_prob(z[80:]).double().mean().item()
    assert score == pytest.approx(result.best_validation_score, abs=1e-6)


def test_averaging_changes_fit_but_not_partial_fit(gaussian_data, tiny_params):
    def fitted(method, ema_decay):
        model = MAFDensity(**{**tiny_params, "ema_decay": ema_decay})
        return getattr(model, method)(gaussian_data).score_samples(gaussian_data)

    assert not np.allclose(fitted("fit", 0.0), fitted("fit", 0.9))
    np.testing.assert_array_equal(fitted("partial_fit", 0.0), fitted("partial_fit", 0.9))
