"""Where a model lives: the ``device`` parameter resolved, and the device a loaded model gets.

No other module of skmaf decides where a model lives.
"""

from __future__ import annotations

import warnings

import torch

from ..exceptions import DeviceWarning

__all__ = ["device_for_loading", "resolve_device"]

#: Device types that skmaf trains and evaluates on.
SUPPORTED_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device) -> torch.device:
    """Turn the estimator's ``device`` parameter into an available torch device.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise. Asking
    for a device this machine does not have, or a kind of device that holds
    no data (``"meta"``), is a ``ValueError`` here, at ``fit``, rather than a
    failure deep inside torch.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', 'cuda' "
            "or 'cuda:N'."
        ) from exc
    if resolved.type not in SUPPORTED_TYPES:
        raise ValueError(
            f"device={device!r}: skmaf runs on {', '.join(SUPPORTED_TYPES)} devices; use "
            "'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or device='cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was requested but MPS is not available.")
    return resolved


def device_for_loading(device: torch.device) -> torch.device:
    """``device`` if this machine has it, else the CPU with a :class:`DeviceWarning`."""
    try:
        return resolve_device(device)
    except ValueError:
        warnings.warn(
            f"The model was fitted on {device}, which is not available here; "
            "it was loaded on the CPU. Scores agree to float32 rounding.",
            DeviceWarning,
            stacklevel=4,
        )
        return torch.device("cpu")
