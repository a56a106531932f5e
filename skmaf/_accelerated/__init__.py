"""The accelerator: everything in skmaf that exists only for speed.

The reference model (:mod:`skmaf.flows`, trained by :mod:`skmaf._training`
through autograd and ``torch.optim.Adam``) is complete without it and never
imports it. The estimator layer asks here, per model, for something faster:

- :func:`training_step`: flat parameters and one Adam kernel for every flow,
  and the hand-written backward pass for a MAF or MAF MoG (:mod:`.manual_backward`);
- :func:`scoring_flow`: a float32, batch-invariant copy for ``score_samples``
  (:mod:`.scoring`), with products through oneDNN where it is faster
  (:mod:`.onednn`);
- :func:`sampling_flow`: sampling that computes each MADE unit once
  (:mod:`.sampling`).

Each gives the reference's result to rounding (tests/accelerated/) and
is chosen by the exact types of the model's modules, so a subclass (which may
compute something else) gets the reference. The private torch operations used
are listed, probed and given fallbacks in :mod:`.private_ops`.
``SKMAF_ACCELERATE=0`` in the environment turns all of it off: every call
below then returns None and the reference runs.
"""

from __future__ import annotations

import os

__all__ = ["SWITCH", "enabled", "sampling_flow", "scoring_flow", "training_step"]

#: The environment variable that turns the accelerator off when set to "0".
SWITCH = "SKMAF_ACCELERATE"


def enabled() -> bool:
    """Whether the accelerator is on (read from the environment at every call)."""
    return os.environ.get(SWITCH, "1") != "0"


def training_step(model, options, batch_size: int, *, manual_backward: bool = True):
    """An :class:`~.step.AcceleratedStep` for ``model``, or None when switched off."""
    if not enabled():
        return None
    from .step import AcceleratedStep

    return AcceleratedStep(model, options, batch_size, manual_backward=manual_backward)


def scoring_flow(flow):
    """The float32 batch-invariant copy of ``flow`` for scoring, or None (reference: ``flow``
    itself in float64)."""
    if not enabled():
        return None
    from .scoring import scoring_copy

    return scoring_copy(flow)


def sampling_flow(flow):
    """``flow`` with planned sequential sampling, or None (reference: ``flow`` itself)."""
    if not enabled():
        return None
    from .sampling import sampling_flow as planned

    return planned(flow)
