"""Peak memory of scoring, mapping and sampling many rows: it must not grow with the rows.

Fits a MAF (K=5, L=1, H=100, the default architecture) on 2,000 rows of 10
features, then, for each operation and each number of rows, measures the
process's peak resident set size (RSS) during the call above the RSS just
before it (which holds the input data, the model and the interpreter), minus
the output array itself: what the call needs beyond its input and output.

The peak is Linux's ``VmHWM``, reset before each call by writing ``5`` to
``/proc/self/clear_refs``, so every call is measured on its own in one
process; ``malloc_trim`` first returns freed heap memory to the system. Linux
with glibc only.

    OMP_NUM_THREADS=1 python benchmarks/memory.py [--rows 100000,1000000]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skmaf import MAFDensity

N_FEATURES = 10
MB = 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status: this benchmark needs Linux.")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def measure(operation) -> tuple[float, float, float]:
    """(extra MB beyond input and output, output MB, seconds) of one call."""
    # Hand freed heap memory back to the system first: memory that malloc keeps
    # resident would count in "before" and then be reused without showing.
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS") * 1024
    _reset_peak()
    start = time.perf_counter()
    output = operation()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") * 1024
    return (peak - before - output.nbytes) / MB, output.nbytes / MB, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000",
                        help="comma-separated numbers of rows (default: %(default)s)")
    sizes = [int(n) for n in parser.parse_args().rows.split(",")]

    torch.set_num_threads(1)
    rng = np.random.RandomState(0)
    mixing = rng.normal(size=(N_FEATURES, N_FEATURES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MAFDensity(max_iter=5, random_state=0).fit(
            np.tanh(rng.normal(size=(2000, N_FEATURES))) @ mixing)

    operations = {
        "score_samples": lambda X: model.score_samples(X),
        "transform": lambda X: model.transform(X),
        "inverse_transform": lambda X: model.inverse_transform(X),
        "sample": lambda X: model.sample(len(X), random_state=0),
    }
    warm_up = rng.normal(size=(20_000, N_FEATURES))  # lazy initialisation is not per-row cost
    for operation in operations.values():
        operation(warm_up)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{N_FEATURES} features, MAF with {model.n_parameters_} connections\n")
    print("| operation | rows | input (MB) | output (MB) | peak RSS beyond input and output "
          "(MB) | time (s) |")
    print("|---|---|---|---|---|---|")
    for n_rows in sizes:
        X = rng.normal(size=(n_rows, N_FEATURES))
        for name, operation in operations.items():
            extra, output, seconds = measure(lambda: operation(X))  # noqa: B023
            input_mb = 0 if name == "sample" else X.nbytes / MB
            print(f"| {name} | {n_rows:,} | {input_mb:.0f} | {output:.0f} | {extra:.1f} | "
                  f"{seconds:.1f} |", flush=True)
        X = None  # frees the rows before the next, larger, batch is drawn


if __name__ == "__main__":
    main()
