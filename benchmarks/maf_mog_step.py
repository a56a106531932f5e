"""MAF MoG's training step: the hand-written backward pass against autograd.

Since the hand-written pass covers a MAF MoG (autograd differentiates only the
mixture base), the accelerated step of ``MAFDensity(n_components=C)`` runs the
MAF's steps by hand. Timed here, in one process with the two alternating round
by round (medians), one training step (loss, gradient, Adam) of a MAF MoG,
K=5, L=1, H=100, C=10 (``MAFDensity(n_components=10)``'s network), batch 256,
at each D, through :class:`~skmaf._accelerated.step.AcceleratedStep` with
``manual_backward`` on and off. Run:

    OMP_NUM_THREADS=1 python benchmarks/maf_mog_step.py [--dims 2 10 16 62] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from skmaf._accelerated.step import AcceleratedStep
from skmaf._training import TrainingOptions
from skmaf.flows import build_maf

BATCH, K, L, H, C = 256, 5, 1, 100, 10


def step_seconds(step, x: torch.Tensor, n_steps: int = 30) -> float:
    for _ in range(3):
        step(x)
    start = time.perf_counter()
    for _ in range(n_steps):
        step(x)
    return (time.perf_counter() - start) / n_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 16, 62])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = TrainingOptions(max_iter=1, batch_size=BATCH, learning_rate=1e-3,
                              l2_penalty=1.0, early_stopping=True, n_iter_no_change=1,
                              tol=0.0, ema_decay=0.99)
    print(f"torch {torch.__version__}, 1 thread; MAF MoG K={K}, L={L}, H={H}, C={C}, "
          f"batch {BATCH}\n")
    print("| D | autograd (ms/step) | hand-written (ms/step) | speed-up |")
    print("|---|---|---|---|")
    for n_features in args.dims:
        x = torch.randn(BATCH, n_features, generator=torch.Generator().manual_seed(1))
        steps = {}
        for manual in (False, True):
            flow = build_maf(n_features, K, L, H, n_components=C,
                             generator=torch.Generator().manual_seed(0)).train()
            steps[manual] = AcceleratedStep(flow, options, BATCH, manual_backward=manual)
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for manual in (False, True):
                times[manual].append(step_seconds(steps[manual], x))
        autograd, hand = (statistics.median(times[m]) for m in (False, True))
        print(f"| {n_features} | {1e3 * autograd:.2f} | {1e3 * hand:.2f} "
              f"| {autograd / hand:.2f} |", flush=True)


if __name__ == "__main__":
    main()
