"""A fitted model in a pickle: its parameters and buffers as arrays, never a pickled module.

What is saved is the ``state_dict`` of the fitted flow as NumPy arrays and a
format number; the estimator keeps the architecture it was built with (the
builder's parameters and the seed of its generator), so loading rebuilds the
flow through the estimator's ``_build_flow`` and loads the arrays into it.
No class of :mod:`skmaf.flows` or :mod:`torch.nn` is named in the pickle, so
the torch layer can change its module layout, and a pickle loads on any
device (:func:`~skmaf._runtime.device.device_for_loading`).
"""

from __future__ import annotations

import io

import numpy as np
import torch

__all__ = ["FORMAT", "LEGACY_FORMAT", "load_state", "saved_state", "state_of_legacy_blob"]

#: The layout of a saved model. 3: the flow's state_dict as arrays (this module).
#: 2: skmaf 0.1.0's whole pickled torch module, read by :func:`state_of_legacy_blob`.
#: 1: before the MAF's MADEs output the shift of u (refused: its numbers mean
#: something else in today's layers).
FORMAT = 3
LEGACY_FORMAT = 2


def saved_state(flow: torch.nn.Module) -> dict:
    """The flow's parameters and buffers as CPU arrays, with the format number."""
    return {"format": FORMAT,
            "state_dict": {name: value.detach().cpu().numpy().copy()
                           for name, value in flow.state_dict().items()}}


#: Buffers added to the layers after models were first saved. A model saved
#: without them keeps the value they are built with: the conditioners' input
#: ranges (flows/ranges.py) stay infinite, so it scores exactly as it did.
_ADDED_BUFFERS = ("input_range.low", "input_range.high",
                  "context_range.low", "context_range.high")


def load_state(flow: torch.nn.Module, saved: dict) -> None:
    """Load :func:`saved_state`'s arrays into a flow of the same architecture."""
    state = {name: torch.from_numpy(np.array(value)) for name, value in
             saved["state_dict"].items()}
    missing, unexpected = flow.load_state_dict(state, strict=False)
    wrong = unexpected + [name for name in missing if not name.endswith(_ADDED_BUFFERS)]
    if wrong:
        raise RuntimeError(f"The saved model does not match its architecture: "
                           f"{sorted(wrong)} differ.")


def state_of_legacy_blob(blob: bytes) -> dict:
    """:func:`saved_state` of a model that skmaf 0.1.0 pickled as a whole torch module.

    The blob names the classes of ``skmaf.flows`` that it was made with, which
    keep their paths and ``state_dict`` keys; only their state is kept.
    """
    # weights_only=False: the blob holds a whole module, written by skmaf itself
    # inside a pickle that the user already chose to trust.
    module = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    return saved_state(module)
