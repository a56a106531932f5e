"""One thread against torch's default thread count, on an idle and on a loaded machine.

Times what a user's first calls do: a ``MAFDensity()`` fit (2,000 rows x 10
features, 5 epochs) and ``score_samples`` on 100,000 rows (``--rows``), each in a fresh
process, with torch's thread count set to 1; with nothing set (skmaf's default);
and with every core allowed (``SKMAF_NUM_THREADS`` = the number of cores, what
skmaf did by default before it chose one thread). "Loaded" runs the same while
one busy process per core spins (plain Python loops, as other work on a shared
machine would). Run:

    python benchmarks/threads.py [--repeats 3] [--rows 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import os, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
import torch
threads = sys.argv[1]
if threads == "1":
    torch.set_num_threads(1)
from skmaf import MAFDensity
rng = np.random.RandomState(0)
X = rng.normal(size=(2000, 10)) @ rng.normal(size=(10, 10))
start = time.perf_counter()
model = MAFDensity(max_iter=5, random_state=0).fit(X)
fit = time.perf_counter() - start
rows = rng.normal(size=(int(sys.argv[2]), 10)) @ rng.normal(size=(10, 10))
start = time.perf_counter()
model.score_samples(rows)
score = time.perf_counter() - start
print(fit, score, torch.get_num_threads())
"""


def _spin(stop):
    while not stop.is_set():
        sum(range(10_000))


def run(threads: str, rows: int) -> tuple[float, float]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SKMAF_NUM_THREADS")}
    if threads == "all":
        environment["SKMAF_NUM_THREADS"] = str(os.cpu_count())
    output = subprocess.run([sys.executable, "-c", CHILD, threads, str(rows)], capture_output=True,
                            text=True, check=True, env=environment).stdout.split()
    return float(output[0]), float(output[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000, help="rows scored")
    args = parser.parse_args()
    n_cores = os.cpu_count()
    print(f"{time.strftime('%Y-%m-%d')}, {n_cores} cores; median of {args.repeats} fresh "
          "processes each\n")
    print(f"| machine | threads | fit (s) | score_samples {args.rows:,} rows (s) |")
    print("|---|---|---|---|")
    for loaded in (False, True):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=_spin, args=(stop,))
                    for _ in range(n_cores if loaded else 0)]
        for spinner in spinners:
            spinner.start()
        try:
            for threads in ("1", "default", "all"):
                times = [run(threads, args.rows) for _ in range(args.repeats)]
                fit, score = (statistics.median(t[k] for t in times) for k in (0, 1))
                label = {"1": "torch.set_num_threads(1)",
                         "default": "nothing set (skmaf's choice)",
                         "all": f"SKMAF_NUM_THREADS={n_cores}"}[threads]
                print(f"| {'loaded' if loaded else 'idle'} | {label} | {fit:.2f} | "
                      f"{score:.2f} |", flush=True)
        finally:
            stop.set()
            for spinner in spinners:
                spinner.join()


if __name__ == "__main__":
    main()
