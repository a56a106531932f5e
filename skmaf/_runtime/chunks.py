"""Evaluation in chunks of rows: memory that does not grow with the data.

The chunk sizes are tuned on the CPU (benchmarks/README.md, "Chunk sizes").

On the CPU, the chunks of one call may be evaluated side by side by several
Python threads, each running torch on one thread of its own: torch releases the
GIL inside its kernels, so the threads share the cores. Unlike torch's own
intra-op threads, they never wait for one another within a chunk, so a thread
that the operating system preempts delays its chunk, not every kernel of every
other thread (on a loaded machine intra-op threads made calls tens of times
slower; benchmarks/README.md, "Threads"). Each chunk is computed by the same
single-threaded kernels whichever thread takes it, so the result is the same,
bit for bit, as that of one thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
                       chunk_size: int = CHUNK_SIZE, row_multiple: int = 1,
                       n_workers: int = 1) -> torch.Tensor:
    """Apply ``function`` to the rows of ``z`` chunk by chunk on ``device``.

    ``z`` is an ndarray or a tensor with at least one row. Each chunk is
    converted to a contiguous ``dtype`` tensor on its way to the device, padded
    with zero rows to a multiple of ``row_multiple`` (the padding's results are
    dropped), and its result is written into one preallocated output on the
    CPU, so the memory used beyond ``z`` and the output is that of a chunk per
    worker, however many rows ``z`` has.

    ``n_workers`` > 1 evaluates the chunks in that many threads, each with one
    torch thread (on the CPU only; ``function`` must be safe to call from
    several threads at once, as a module's forward pass without gradients is).
    """
    starts = range(0, z.shape[0], chunk_size)
    output = None

    def evaluate(start: int) -> torch.Tensor:
        chunk = z[start:start + chunk_size]
        if isinstance(chunk, np.ndarray) and not (chunk.flags.writeable
                                                  and chunk.flags.c_contiguous):
            # torch warns about read-only memory and rejects negative strides (X[::-1]).
            chunk = chunk.copy()
        chunk = torch.as_tensor(chunk, dtype=dtype, device=device).contiguous()
        n_rows = chunk.shape[0]
        n_padding = -n_rows % row_multiple
        if n_padding:
            chunk = torch.cat([chunk, chunk.new_zeros(n_padding, *chunk.shape[1:])])
        return function(chunk)[:n_rows]

    def write(start: int, result: torch.Tensor) -> None:
        nonlocal output
        if output is None:
            output = torch.empty((z.shape[0], *result.shape[1:]), dtype=result.dtype)
        output[start:start + chunk_size] = result

    n_workers = min(n_workers, len(starts)) if torch.device(device).type == "cpu" else 1
    if n_workers <= 1:
        for start in starts:
            write(start, evaluate(start))
        return output

    def evaluate_on_one_thread(start: int) -> torch.Tensor:
        # Gradient mode and the torch thread count are per thread.
        torch.set_num_threads(1)
        with torch.no_grad():
            return evaluate(start)

    with ThreadPoolExecutor(n_workers, thread_name_prefix="skmaf-chunk") as pool:
        # At most two chunks a worker in flight: memory stays a few chunks'.
        pending = {}
        for start in starts:
            pending[start] = pool.submit(evaluate_on_one_thread, start)
            if len(pending) >= 2 * n_workers:
                first = next(iter(pending))
                write(first, pending.pop(first).result())
        for start, future in pending.items():
            write(start, future.result())
    return output
