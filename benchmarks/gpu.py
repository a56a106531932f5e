"""skmaf on a CUDA GPU: the ``gpu``-marked tests, then fit, log-density and sampling
against zuko at the same architecture.

1. Runs ``pytest -m gpu`` (the tests that need CUDA; they skip without it) and
   prints its summary line.
2. For D in (10, 62) and H in (100, 1024), K=5, L=2, ReLU, no batch norm, times
   on the device, with ``torch.cuda.synchronize`` around every timed call and the
   median over rounds:

   - one training step at batch 4,096: what ``MAFDensity.fit`` runs (the
     accelerator's step) against zuko's ``-flow().log_prob(x).mean()``, its
     backward pass and ``torch.optim.Adam``;
   - the log-density of 100,000 rows: ``MAFDensity.score_samples`` (host array in,
     host array out, as a user calls it) against zuko's ``log_prob`` on a tensor
     already on the device;
   - 100,000 samples: ``MAFDensity.sample`` against zuko's ``sample``.

No GPU is needed to check the script itself: ``--device cpu --quick`` runs it at
tiny sizes. Run on a GPU machine (``pip install -e ".[bench]"`` for zuko):

    python benchmarks/gpu.py [--device cuda] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
K, L = 5, 2


def run_gpu_tests() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p",
                             "no:cacheprovider"], cwd=REPO, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    print(f"pytest -m gpu: {lines[-1] if lines else result.stderr.strip()[-300:]}\n")


def timed(function, device: torch.device, rounds: int) -> float:
    """Median seconds of ``function()`` over ``rounds`` calls, after one warm-up call."""

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    function()
    synchronize()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def skmaf_measures(n_features, n_units, device, batch, n_rows, rounds):
    from skmaf import MAFDensity
    from skmaf._accelerated.step import AcceleratedStep
    from skmaf._training import TrainingOptions
    from skmaf.flows import build_maf

    flow = build_maf(n_features, K, L, n_units, batch_norm=False,
                     generator=torch.Generator().manual_seed(0)).to(device).train()
    options = TrainingOptions(max_iter=1, batch_size=batch, learning_rate=1e-3,
                              l2_penalty=1.0, early_stopping=False, n_iter_no_change=1,
                              tol=0.0, ema_decay=0.99)
    step = AcceleratedStep(flow, options, batch)
    x = torch.randn(batch, n_features, device=device)
    step_seconds = timed(lambda: step(x), device, rounds)
    step.close()

    rng = np.random.RandomState(0)
    model = MAFDensity(K, n_hidden_layers=L, n_hidden_units=n_units, batch_norm=False,
                       max_iter=1, batch_size=batch, device=str(device),
                       random_state=0).fit(rng.normal(size=(4 * batch, n_features)))
    rows = rng.normal(size=(n_rows, n_features))
    return {"step": step_seconds,
            "log-density": timed(lambda: model.score_samples(rows), device, rounds),
            "sample": timed(lambda: model.sample(n_rows, random_state=0), device, rounds)}


def zuko_measures(n_features, n_units, device, batch, n_rows, rounds):
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.MAF(n_features, transforms=K, hidden_features=(n_units,) * L,
                          activation=torch.nn.ReLU).to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x = torch.randn(batch, n_features, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = -flow().log_prob(x).mean()
        loss.backward()
        optimizer.step()

    rows = torch.randn(n_rows, n_features, device=device)

    @torch.no_grad()
    def log_density():
        return flow().log_prob(rows)

    @torch.no_grad()
    def sample():
        return flow().sample((n_rows,))

    return {"step": timed(step, device, rounds),
            "log-density": timed(log_density, device, rounds),
            "sample": timed(sample, device, rounds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device here; --device cpu --quick checks the script.")
    batch, n_rows = (64, 500) if args.quick else (4096, 100_000)
    dims, units = ((3,), (16,)) if args.quick else ((10, 62), (100, 1024))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{time.strftime('%Y-%m-%d')}, {name}, torch {torch.__version__}; K={K}, L={L}, "
          f"batch {batch}, {n_rows:,} rows; medians of {args.rounds}\n")
    run_gpu_tests()
    print("| D | H | measure | skmaf (ms) | zuko (ms) | zuko / skmaf |")
    print("|---|---|---|---|---|---|")
    for n_features in dims:
        for n_units in units:
            ours = skmaf_measures(n_features, n_units, device, batch, n_rows, args.rounds)
            theirs = zuko_measures(n_features, n_units, device, batch, n_rows, args.rounds)
            for measure in ("step", "log-density", "sample"):
                print(f"| {n_features} | {n_units} | {measure} | {1e3 * ours[measure]:.2f} | "
                      f"{1e3 * theirs[measure]:.2f} | {theirs[measure] / ours[measure]:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
