"""MKL against oneDNN for skmaf's float32 products on the CPU (skmaf/_accelerated/onednn.py).

1. The rate of a dense float32 product through each (GFLOP/s), at the 256 rows
   of a training step and the 2,048 rows of a scoring chunk.
2. Per product of a MAF's MADE (K=5, L=2, H=100) at D = 2 to 62, microseconds
   through MKL / through oneDNN: the forward product and d/d(input) at 256
   rows, d/dW at 256 rows (both operands transposed for oneDNN), the forward
   product at 2,048 rows.
3. ``score_samples`` on 10,000 rows with oneDNN switched off and on, in
   alternating rounds, and the largest difference of the scores. (The training
   step no longer uses oneDNN; benchmarks/README.md, "The redesign's cost".)

Medians over alternating rounds, one thread. Run:

    python benchmarks/onednn.py [--dims 2 10 16 27 62] [--rounds 9] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch
from torch.nn import functional as F

from skmaf import MAFDensity
from skmaf._accelerated import private_ops

H = 100


def _oned(x, weight, bias=None):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")


def alternating(candidates: dict, rounds: int, calls: int) -> dict:
    """Median seconds per call of each candidate, the candidates alternating round by round."""
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, call in candidates.items():
            for _ in range(max(calls // 10, 1)):
                call()
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in times.items()}


def product_rates(rounds: int) -> None:
    print("1. Dense float32 product, GFLOP/s (x of n_rows x 100 times 100 x 100)")
    for n_rows in (256, 2048):
        seconds = _product_seconds(n_rows, rounds)
        flops = 2 * n_rows * H * H
        print(f"   {n_rows:>5} rows: " + ", ".join(
            f"{name} {flops / value / 1e9:.0f}" for name, value in seconds.items()))


def _product_seconds(n_rows: int, rounds: int) -> dict:
    x, weight = torch.randn(n_rows, H), torch.randn(H, H)
    return alternating({"MKL": lambda: F.linear(x, weight), "oneDNN": lambda: _oned(x, weight)},
                       rounds, 20000 // n_rows * 10)


def product_table(dims, rounds: int) -> None:
    print("\n2. Products of a MADE, microseconds MKL / oneDNN (speed-up)")
    print("| weight (out x in) | forward, 256 rows | d/d(input), 256 rows "
          "| d/dW, 256 rows | forward, 2,048 rows |")
    print("|---|---|---|---|---|")
    shapes = sorted({(H, n) for n in dims} | {(H, H)} | {(2 * n, H) for n in dims})
    for n_out, n_in in shapes:
        cells = []
        for mkl, one_dnn, calls in _made_products(n_out, n_in):
            seconds = alternating({"MKL": mkl, "oneDNN": one_dnn}, rounds, calls)
            cells.append(f"{seconds['MKL'] * 1e6:.1f} / {seconds['oneDNN'] * 1e6:.1f} "
                         f"({seconds['MKL'] / seconds['oneDNN']:.2f}x)")
        print(f"| {n_out} x {n_in} | " + " | ".join(cells) + " |", flush=True)


def _made_products(n_out: int, n_in: int) -> list:
    """(MKL call, oneDNN call, calls per round) for each product of the table's row."""
    weight, bias = torch.randn(n_out, n_in), torch.randn(n_out)
    x, grad = torch.randn(256, n_in), torch.randn(256, n_out)
    x_scoring = torch.randn(2048, n_in)
    grad_weight = torch.empty(n_out, n_in)
    return [
        (lambda: F.linear(x, weight, bias), lambda: _oned(x, weight, bias), 2000),
        (lambda: torch.mm(grad, weight), lambda: _oned(grad, weight.t()), 2000),
        (lambda: torch.mm(grad.t(), x, out=grad_weight),
         lambda: grad_weight.copy_(_oned(grad.t(), x.t())), 2000),
        (lambda: F.linear(x_scoring, weight, bias), lambda: _oned(x_scoring, weight, bias), 200),
    ]


def _use_onednn(flag: bool) -> None:
    os.environ[private_ops.ONEDNN_SWITCH] = "1" if flag else "0"


def scoring(dims, rounds: int) -> None:
    print("\n3. score_samples on 10,000 rows (rows/s), oneDNN off / on")
    print("| D | score_samples (MAF+BN) | largest score difference |")
    print("|---|---|---|")
    try:
        for n_features in dims:
            cells = []
            rng = np.random.RandomState(0)
            model = MAFDensity(5, n_hidden_layers=2, n_hidden_units=H, max_iter=1,
                               random_state=0).fit(rng.randn(2000, n_features))
            rows = rng.randn(10_000, n_features)
            _use_onednn(False)
            scores_off = model.score_samples(rows)
            _use_onednn(True)
            difference = np.abs(model.score_samples(rows) - scores_off).max()
            times = {flag: [] for flag in (False, True)}
            for _ in range(rounds):
                for flag in times:
                    _use_onednn(flag)
                    start = time.perf_counter()
                    model.score_samples(rows)
                    times[flag].append(time.perf_counter() - start)
            off, on = (len(rows) / statistics.median(times[flag]) for flag in (False, True))
            cells.append(f"{off:,.0f} / {on:,.0f} ({on / off:.2f}x)")
            cells.append(f"{difference:.1e}")
            print(f"| {n_features} | " + " | ".join(cells) + " |", flush=True)
    finally:
        _use_onednn(True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 16, 27, 62])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if not private_ops.available("onednn_linear"):
        raise SystemExit("torch's oneDNN linear is not available here: nothing to compare.")
    product_rates(args.rounds)
    product_table(args.dims, args.rounds)
    scoring(args.dims, args.rounds)


if __name__ == "__main__":
    main()
