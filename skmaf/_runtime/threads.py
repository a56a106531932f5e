"""How many threads torch may use for one skmaf computation (a fit, a scoring pass).

Parallel frameworks hand each worker a share of the CPUs: joblib's loky backend
sets ``OMP_NUM_THREADS`` to ``cpu_count // n_jobs`` in its worker processes and
Dask's nanny sets it to 1 in its workers. Torch reads that variable only when
it is imported, and it knows nothing of fits that run side by side in threads
of one process (joblib's threading backend, Dask workers with
``processes=False``), where each fit would otherwise start one thread per core.

So every fit, ``partial_fit``, scoring or sampling call runs inside
:func:`torch_threads_within_budget`, which lowers torch's thread count for the
calling thread to the budget and restores it afterwards. It never raises the
count: a limit set by the user (``torch.set_num_threads``, threadpoolctl) holds.

The budget is one thread unless the environment variable ``SKMAF_NUM_THREADS``
asks for more. skmaf's networks are small: their products gain little or
nothing from a second thread on an idle machine, and on a machine whose cores
are busy with other work a second thread that waits on a preempted one made
calls tens of times slower (benchmarks/README.md, "Threads").

Scoring, ``transform`` and ``inverse_transform`` use the CPUs another way: their
chunks of rows are shared among up to :func:`worker_budget` threads, each with
one torch thread (:mod:`.chunks`), which no preempted thread can hold up.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import torch
from joblib import cpu_count

__all__ = ["THREADS_VARIABLE", "evaluation_workers", "thread_budget",
           "torch_threads_within_budget", "worker_budget"]

#: The environment variable that allows skmaf's calls more than one torch thread.
THREADS_VARIABLE = "SKMAF_NUM_THREADS"

_lock = threading.Lock()
_n_running = 0  # skmaf computations running now in this process, one per thread
_this_thread = threading.local()


def _threads_from(variable: str) -> int | None:
    """The thread count an environment variable names, if it names one.

    OpenMP allows a list (``"4,2"``) for nested levels; the first entry is ours.
    """
    value = os.environ.get(variable, "").split(",")[0].strip()
    return max(int(value), 1) if value.isdigit() else None


def _within_limits(requested: int, n_running: int, caller_threads: int) -> int:
    """``requested`` threads, but no more than the caller's torch count, an equal
    share of the CPUs among ``n_running`` computations, or the process's
    ``OMP_NUM_THREADS`` (read now, not at torch's import); at least 1."""
    budget = min(requested, caller_threads, max(cpu_count() // n_running, 1))
    given = _threads_from("OMP_NUM_THREADS")
    return max(budget if given is None else min(budget, given), 1)


def thread_budget(n_running: int) -> int:
    """Threads for one of ``n_running`` skmaf computations running in this process.

    The smallest of: ``SKMAF_NUM_THREADS`` (1 when unset), torch's current count
    for this thread, the process's ``OMP_NUM_THREADS`` (read now, not at torch's
    import) and an equal share of the CPUs available to the process. Always at
    least 1.

    Examples
    --------
    >>> import torch
    >>> thread_budget(1) <= torch.get_num_threads()
    True
    """
    return _within_limits(_threads_from(THREADS_VARIABLE) or 1, n_running,
                          torch.get_num_threads())


def worker_budget(n_running: int, caller_threads: int) -> int:
    """Threads that may evaluate the chunks of one of ``n_running`` computations
    side by side, each with one torch thread (:mod:`.chunks`).

    One per CPU of this computation's share (``cpu_count() // n_running``), and
    no more than the caller's torch thread count before the call
    (``caller_threads``: a user's ``torch.set_num_threads`` or threadpoolctl
    limit holds), ``OMP_NUM_THREADS`` (joblib's workers get their share of the
    CPUs there) or ``SKMAF_NUM_THREADS`` when they are set. Chunks wait for no
    other thread, so unlike intra-op threads they do not slow down on a loaded
    machine.
    """
    return _within_limits(_threads_from(THREADS_VARIABLE) or caller_threads, n_running,
                          caller_threads)


def evaluation_workers() -> int:
    """:func:`worker_budget` of the computation running in this thread (1 outside one)."""
    return getattr(_this_thread, "workers", 1)


@contextmanager
def torch_threads_within_budget():
    """Run the block with torch limited to :func:`thread_budget`; restore the count after.

    Torch's thread count is per calling thread, so fits running side by side in
    threads each keep their own. Re-entrant: a computation nested in another on
    the same thread keeps the outer budget and is not counted twice.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads_within_budget() as budget:
    ...     torch.get_num_threads() == budget
    True
    >>> torch.get_num_threads() == before
    True
    """
    if getattr(_this_thread, "inside", False):
        yield torch.get_num_threads()
        return
    global _n_running
    with _lock:
        _n_running += 1
        n_running = _n_running
    previous = torch.get_num_threads()
    budget = thread_budget(n_running)
    _this_thread.inside = True
    _this_thread.workers = worker_budget(n_running, previous)
    try:
        if budget != previous:
            torch.set_num_threads(budget)
        yield budget
    finally:
        if budget != previous:
            torch.set_num_threads(previous)
        _this_thread.inside = False
        _this_thread.workers = 1
        with _lock:
            _n_running -= 1
