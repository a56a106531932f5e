"""One training step at batch 256, per library, against the machine's matmul roofline.

A step is the whole of one minibatch update: forward pass, negative mean
log-likelihood, backward pass and the optimiser step. The libraries run round
by round (A B C ..., repeated), and each figure is the median over rounds, so
drift on a shared machine hits all alike. Each round builds every model anew
(but the compiled one): where a model's tensors land in memory moved the step
time of two identical skmaf models by 13% (D=62, batch norm), so a run that kept
one model per library for all its rounds drew that luck once per library, and
its ratios moved run to run (1.33-1.73 at D=27 with batch norm). The roofline is the dense float32
matmul rate of a 256x100 by 100x100 product, the shape that dominates a step,
through the faster of torch's two CPU libraries for it, MKL (what ``torch.mm``
uses) and oneDNN (skmaf/_accelerated/onednn.py); each step is also stated as the
fraction of it that its dense-equivalent FLOPs reach.
"plain MLP" is the same shapes unmasked, with no flow arithmetic, through autograd:
a reference for what the masks and the flow cost. "skmaf" rows are what
``MAFDensity.fit`` runs (the accelerator's step: the hand-written backward pass); "skmaf
autograd" is the same step through autograd, "skmaf autograd compiled" that through
``torch.compile`` (what ``compile=True`` does for the models the hand-written pass does not
cover), its one-off compilation in the untimed warm-up, and "skmaf reference" the reference
step (autograd and ``torch.optim.Adam``, what ``SKMAF_ACCELERATE=0`` trains with). Run:

    python benchmarks/micro.py [--dims 2 10 16 27 62] [--rounds 11] [--threads 1]
        [--output benchmarks/micro.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import peers
import torch

BATCH = 256
HERE = Path(__file__).resolve().parent


def matmul_gflops(product=torch.mm, repeat: int = 2000) -> float:
    a, b = torch.randn(BATCH, peers.H), torch.randn(peers.H, peers.H)
    for _ in range(100):
        product(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        product(a, b)
    return 2 * BATCH * peers.H * peers.H * repeat / (time.perf_counter() - start) / 1e9


def product_rates() -> dict:
    """GFLOP/s of the roofline's product through each float32 CPU library torch has."""
    from skmaf._accelerated import onednn, private_ops

    products = {"MKL": torch.mm}
    if private_ops.available("onednn_linear"):
        products["oneDNN"] = lambda a, b: onednn.linear(a, b.t())
    return {name: statistics.median(matmul_gflops(product) for _ in range(5))
            for name, product in products.items()}


def dense_step_flops(n_features: int) -> float:
    """FLOPs of the step's matmuls if the masks were dense: forward plus two backward."""
    widths = [n_features] + [peers.H] * peers.L + [2 * n_features]
    per_made = sum(2 * BATCH * a * b for a, b in zip(widths[:-1], widths[1:]))
    return 3 * peers.K * per_made


def _autograd_step(parameters, log_prob):
    """A step as the peers' users write it: autograd, then fused Adam."""
    optimizer = torch.optim.Adam(parameters, lr=1e-3, fused=True)

    def step(x):
        loss = -log_prob(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def skmaf_step(n_features: int, batch_norm: bool, autograd: bool = False,
               compile: bool = False, reference: bool = False):
    """What ``MAFDensity.fit`` runs per step (the accelerator's step, default options);
    ``autograd`` without the hand-written backward pass, ``compile`` through
    ``torch.compile`` (its one-off compilation happens in the untimed warm-up steps),
    ``reference`` the reference step (autograd and torch.optim.Adam, what
    ``SKMAF_ACCELERATE=0`` trains with)."""
    from skmaf import MAFDensity
    from skmaf._accelerated.step import AcceleratedStep
    from skmaf._training import TrainingOptions
    from skmaf._training.options import resolve_learning_rate
    from skmaf._training.step import ReferenceStep
    from skmaf.flows import build_maf

    # The estimator's base: N(0, I) with its default tail weight on a wide component.
    flow = build_maf(n_features, peers.K, peers.L, peers.H, batch_norm=batch_norm,
                     tail_weight=MAFDensity().tail_weight,
                     generator=torch.Generator().manual_seed(0)).train()
    defaults = peers.Settings()
    # With the default Polyak averaging, whose update after each step is part of it.
    learning_rate = resolve_learning_rate(defaults.learning_rate, BATCH)
    options = TrainingOptions(max_iter=1, batch_size=BATCH, learning_rate=learning_rate,
                              l2_penalty=defaults.alpha, early_stopping=True, n_iter_no_change=1,
                              tol=0.0, ema_decay=defaults.ema_decay, compile=compile)
    if reference:
        return ReferenceStep(flow, options, BATCH)
    return AcceleratedStep(flow, options, BATCH, manual_backward=not autograd)


def zuko_step(n_features: int):
    flow = peers.zuko_maf(n_features)
    return _autograd_step(flow.parameters(), lambda x: flow().log_prob(x))


def nflows_step(n_features: int, batch_norm: bool):
    flow = peers.nflows_maf(n_features, batch_norm).train()
    return _autograd_step(flow.parameters(), flow.log_prob)


def plain_mlp_step(n_features: int):
    """K unmasked MLPs of the MADEs' shapes in a row; the loss is a plain sum of squares."""
    widths = [n_features] + [peers.H] * peers.L + [2 * n_features]
    mlps = torch.nn.ModuleList()
    for _ in range(peers.K):
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        mlps.append(torch.nn.Sequential(*layers[:-1]))

    def log_prob(x):
        for mlp in mlps:
            x = mlp(x)[:, :n_features]
        return -x.square().sum(dim=1)

    return _autograd_step(mlps.parameters(), log_prob)


LIBRARIES = {
    "skmaf": lambda d: skmaf_step(d, batch_norm=False),
    "skmaf+BN": lambda d: skmaf_step(d, batch_norm=True),
    "skmaf autograd": lambda d: skmaf_step(d, batch_norm=False, autograd=True),
    "skmaf autograd compiled": lambda d: skmaf_step(d, batch_norm=False, autograd=True,
                                                    compile=True),
    "skmaf reference": lambda d: skmaf_step(d, batch_norm=False, reference=True),
    "zuko": zuko_step,
    "nflows": lambda d: nflows_step(d, batch_norm=False),
    "nflows+BN": lambda d: nflows_step(d, batch_norm=True),
    "plain MLP": plain_mlp_step,
}


#: Models that every round reuses: compiling anew each round would cost 5-20 s a
#: round and, past torch's recompile limit, silently fall back to eager mode.
BUILT_ONCE = {"skmaf autograd compiled"}


def steps_per_second(step, x, n_steps: int) -> float:
    for _ in range(5):
        step(x)
    start = time.perf_counter()
    for _ in range(n_steps):
        step(x)
    return n_steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 10, 16, 27, 62])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES),
                        choices=list(LIBRARIES))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=40, help="steps timed per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(HERE / "micro.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import run  # for the machine description

    products = product_rates()
    roofline = max(products.values())
    print(f"{time.strftime('%Y-%m-%d')}, {run.machine()}, {args.threads} thread(s); "
          f"roofline: {roofline:.1f} GFLOP/s (float32 {BATCH}x{peers.H} @ "
          f"{peers.H}x{peers.H}, the faster of "
          + ", ".join(f"{name} {rate:.1f}" for name, rate in products.items()) + ")\n")
    print("| D | library | step (ms) | samples/s | vs zuko | vs best peer | % of roofline |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for n_features in args.dims:
        x = torch.randn(BATCH, n_features)
        steps = {name: LIBRARIES[name](n_features) for name in args.libraries}
        rates = {name: [] for name in args.libraries}
        for _ in range(args.rounds):
            for name in args.libraries:
                if name not in BUILT_ONCE:
                    steps[name] = LIBRARIES[name](n_features)
                rates[name].append(steps_per_second(steps[name], x, args.steps))
        median = {name: statistics.median(values) for name, values in rates.items()}
        best_peer = max((median[name] for name in median
                         if name.split("+")[0] in ("zuko", "nflows")), default=np.nan)
        for name, rate in median.items():
            fraction = dense_step_flops(n_features) * rate / (roofline * 1e9)
            result = {"n_features": n_features, "library": name, "steps_per_second": rate,
                      "samples_per_second": rate * BATCH, "roofline_fraction": fraction,
                      "vs_zuko": rate / median.get("zuko", np.nan),
                      "vs_best_peer": rate / best_peer}
            results.append(result)
            print(f"| {n_features} | {name} | {1e3 / rate:.2f} | {rate * BATCH:,.0f} "
                  f"| {result['vs_zuko']:.2f} | {result['vs_best_peer']:.2f} "
                  f"| {100 * fraction:.0f}% |", flush=True)
    Path(args.output).write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "machine": run.machine(), "threads": args.threads,
         "batch": BATCH, "roofline_gflops": roofline, "product_gflops": products,
         "results": results}, indent=1))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
