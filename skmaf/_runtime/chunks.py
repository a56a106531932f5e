"""Evaluation in chunks of rows: memory that does not grow with the data.

The chunk sizes are tuned on the CPU (benchmarks/README.md, "Chunk sizes").
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["CHUNK_SIZE", "SAMPLING_CHUNK_SIZE", "SCORING_CHUNK_SIZE", "evaluate_in_chunks"]

#: Rows per float64 forward pass without gradients (``transform``, batch-norm
#: statistics, validation scores): a chunk's hidden activations (1024 x H
#: float64) stay in the CPU's cache.
CHUNK_SIZE = 1024

#: Rows per forward pass of ``score_samples``.
SCORING_CHUNK_SIZE = 2048

#: Rows per pass in the sampling direction (``sample``, ``inverse_transform``):
#: D sequential steps of small kernels per chunk, whose fixed cost larger chunks
#: spread over more rows.
SAMPLING_CHUNK_SIZE = 2048


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
