"""Device strings and device-independent (de)serialisation of torch modules.

No other module of skmaf calls ``torch.load`` or decides where a model lives.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

__all__ = [
    "CHUNK_SIZE",
    "SAMPLING_CHUNK_SIZE",
    "SCORING_CHUNK_SIZE",
    "DeviceWarning",
    "evaluate_in_chunks",
    "module_from_bytes",
    "module_to_bytes",
    "resolve_device",
]

#: Rows per float64 forward pass without gradients (``transform``, batch-norm
#: statistics, validation scores): large enough to keep matrix products
#: efficient, small enough that a chunk's hidden activations (1024 x H float64)
#: stay in the CPU's cache. Scoring 10,000 rows in float64 with a K=5, L=2,
#: H=100 MAF on one core ran 2.1x faster at D=10 and 1.5x at D=62 than with
#: chunks of 8192 (benchmarks/README.md).
CHUNK_SIZE = 1024

#: Rows per forward pass of ``score_samples``, whose flow runs in float32: its
#: activations take half the memory, and chunks of 2,048 rows scored 10,000
#: rows 1.1-1.2x faster than chunks of 1,024 at D = 2 to 64 (K=5, L=2, H=100,
#: one core); 4,096 was faster still at small D but slower at D=64.
SCORING_CHUNK_SIZE = 2048

#: Rows per pass in the sampling direction (``sample``, ``inverse_transform``):
#: D sequential steps of small kernels per chunk, whose fixed cost larger chunks
#: spread over more rows. 2,048 rows sampled 1.2-1.4x faster than 1,024 at
#: D = 6 to 62; the forward direction (``transform``) was fastest at 1,024.
SAMPLING_CHUNK_SIZE = 2048


class DeviceWarning(UserWarning):
    """A model was loaded on another device than the one it was fitted on."""


def resolve_device(device) -> torch.device:
    """Turn the estimator's ``device`` parameter into an available torch device.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise. Asking
    for a device this machine does not have is a ``ValueError`` here, at
    ``fit``, rather than a failure deep inside torch.
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


def _is_available(device: torch.device) -> bool:
    try:
        resolve_device(device)
    except ValueError:
        return False
    return True


def module_to_bytes(module: torch.nn.Module) -> bytes:
    """Serialise a whole module; torch copies device storages to host one at a time."""
    buffer = io.BytesIO()
    torch.save(module, buffer)
    return buffer.getvalue()


def module_from_bytes(blob: bytes, device: torch.device) -> tuple[torch.nn.Module, torch.device]:
    """Load a module onto ``device``, or onto the CPU with a warning if it is missing here.

    Returns the module and the device it now lives on.
    """
    target = device if _is_available(device) else torch.device("cpu")
    if target != device:
        warnings.warn(
            f"The model was fitted on {device}, which is not available here; "
            "it was loaded on the CPU. Scores agree to float32 rounding.",
            DeviceWarning,
            stacklevel=3,
        )
    # weights_only=False: the blob holds a whole module, written by skmaf itself
    # inside a pickle that the user already chose to trust.
    module = torch.load(io.BytesIO(blob), map_location=target, weights_only=False)
    return module, target


@torch.no_grad()
def evaluate_in_chunks(function, z, device: torch.device, dtype: torch.dtype,
                       chunk_size: int = CHUNK_SIZE, row_multiple: int = 1) -> torch.Tensor:
    """Apply ``function`` to the rows of ``z`` chunk by chunk on ``device``.

    ``z`` is an ndarray or a tensor with at least one row. Each chunk is
    converted to a contiguous ``dtype`` tensor on its way to the device, padded
    with zero rows to a multiple of ``row_multiple`` (the padding's results are
    dropped), and its result is written into one preallocated output on the
    CPU, so the memory used beyond ``z`` and the output is that of a single
    chunk, however many rows ``z`` has.
    """
    output = None
    for start in range(0, z.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        chunk = z[rows]
        if isinstance(chunk, np.ndarray) and not (chunk.flags.writeable
                                                  and chunk.flags.c_contiguous):
            # torch warns about read-only memory and rejects negative strides (X[::-1]).
            chunk = chunk.copy()
        chunk = torch.as_tensor(chunk, dtype=dtype, device=device).contiguous()
        n_rows = chunk.shape[0]
        n_padding = -n_rows % row_multiple
        if n_padding:
            chunk = torch.cat([chunk, chunk.new_zeros(n_padding, *chunk.shape[1:])])
        result = function(chunk)[:n_rows]
        if output is None:
            output = torch.empty((z.shape[0], *result.shape[1:]), dtype=result.dtype)
        output[rows] = result
    return output
