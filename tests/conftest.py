"""Shared fixtures. Torch runs on one thread: on a busy 2-core machine two threads
were measured 6-50x slower for the tiny networks the tests use."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from ._common import TINY  # noqa: E402 (after the thread count is set)


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Each test draws the same torch numbers whatever ran before it."""
    torch.manual_seed(0)


@pytest.fixture
def tiny_params():
    return dict(TINY)


@pytest.fixture
def gaussian_data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(120, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -3.0]
