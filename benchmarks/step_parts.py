"""The measurements behind the choices in skmaf's training step, on this machine.

Each line times two ways of computing the same thing, in alternating rounds
(median over rounds, microseconds per call), at the shapes of the paper's MAF
(K=5, L=2, H=100, batch 256):

- ``torch.optim.Adam`` over a MAF's 30 parameter tensors, against the same
  numbers as views into two flat tensors (``skmaf/_flat_parameters.py``), and
  against skmaf's own Adam over those, which calls the same fused kernel without
  ``torch.optim``'s Python (``skmaf/_adam.py``);
- the first MADE layer's gradients: d/dW as ``grad^T x``, with ``x``
  zero-padded to a multiple of 16 columns, and as ``(x^T grad)^T`` (the
  product with its narrow side first, then copied into place); d/dx with a
  D-wide operand as it is and zero-padded (``_AffineStep`` in
  ``skmaf/flows/manual_backward.py``);
- the soft clamp ``tanh(r / 7)`` against ``2 sigmoid(2 r / 7) - 1``;
- batch statistics by ``torch.var_mean`` against a mean and a mean of squares;
- a whole MAF step through autograd against the hand-written backward pass,
  and the same on a tiny MAF (D=2, H=4, batch 8), where all that is left is
  the per-op and Python overhead. Run:

    python benchmarks/step_parts.py [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

BATCH, H, K = 256, 100, 5


def compare(title: str, candidates: dict, n_calls: int = 200, rounds: int = 7) -> None:
    for function in candidates.values():
        for _ in range(20):
            function()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            start = time.perf_counter()
            for _ in range(n_calls):
                function()
            times[name].append((time.perf_counter() - start) / n_calls * 1e6)
    cells = ", ".join(f"{name} {statistics.median(t):,.1f}" for name, t in times.items())
    print(f"| {title} | {cells} |", flush=True)


def adam(n_features: int) -> None:
    from skmaf._accelerated.adam import FlatAdam
    from skmaf._accelerated.flat_parameters import FlatParameters
    from skmaf.flows import build_maf

    def optimizer(flat: bool, skmaf_adam: bool = False):
        flow = build_maf(n_features, K, 2, H, batch_norm=False)
        named = list(flow.named_parameters())
        groups = [[p for name, p in named if name.endswith("weight")],
                  [p for name, p in named if not name.endswith("weight")]]
        if flat:
            groups = [[f] for f in FlatParameters(groups).flat]
        for group in groups:
            for p in group:
                p.grad = torch.randn_like(p)
        decays = [1e-8, 0.0]
        if skmaf_adam:
            return FlatAdam([(group[0], decay) for group, decay in zip(groups, decays)],
                            lr=1e-3).step
        return torch.optim.Adam([{"params": g, "weight_decay": w}
                                 for g, w in zip(groups, decays)], fused=True).step

    compare(f"Adam step, D={n_features}", {"30 tensors": optimizer(False),
                                           "2 flat tensors": optimizer(True),
                                           "2 flat tensors, FlatAdam": optimizer(True, True)})


def first_layer(n_features: int) -> None:
    padded = -(-n_features // 16) * 16
    grad, x = torch.randn(BATCH, H), torch.randn(BATCH, n_features)
    weight = torch.randn(H, n_features)
    x_padded = torch.nn.functional.pad(x, (0, padded - n_features))
    weight_padded = torch.nn.functional.pad(weight, (0, padded - n_features))
    grad_weight = torch.empty(H, n_features)
    compare(f"d/dW of the first layer, D={n_features} (padded to {padded})", {
        "grad^T x": lambda: torch.mm(grad.t(), x, out=grad_weight),
        "grad^T x, padded": lambda: grad_weight.copy_((grad.t() @ x_padded)[:, :n_features]),
        "(x^T grad)^T": lambda: grad_weight.copy_(torch.mm(x.t(), grad).t()),
    })
    compare(f"d/dx of the first layer, D={n_features} (padded to {padded})", {
        "as is": lambda: grad @ weight,
        "padded": lambda: (grad @ weight_padded)[:, :n_features],
    })


def soft_clamp(n_features: int) -> None:
    raw = 3 * torch.randn(BATCH, n_features)
    compare(f"tanh(r / 7), D={n_features}", {
        "tanh": lambda: torch.tanh(raw * (1 / 7)),
        "sigmoid": lambda: torch.sigmoid(raw * (2 / 7)).mul_(2).sub_(1),
    })


def batch_statistics(n_features: int) -> None:
    x = torch.randn(BATCH, n_features)

    def mean_of_squares():
        centred = x - x.mean(dim=0)
        return centred.square().mean(dim=0)

    compare(f"batch variance, D={n_features}", {
        "var_mean": lambda: torch.var_mean(x, dim=0, correction=0),
        "mean, centre, mean of squares": mean_of_squares,
    })


def whole_step(n_features: int, n_units: int, batch: int) -> None:
    from skmaf._accelerated.step import AcceleratedStep as TrainingStep
    from skmaf._training import TrainingOptions
    from skmaf.flows import build_maf

    options = TrainingOptions(max_iter=1, batch_size=batch, learning_rate=1e-3, l2_penalty=1e-6,
                              early_stopping=True, n_iter_no_change=1, tol=0.0)
    x = torch.randn(batch, n_features)
    steps = {}
    for name, manual in [("autograd", False), ("hand-written", True)]:
        flow = build_maf(n_features, K, 2, n_units, batch_norm=True,
                         generator=torch.Generator().manual_seed(0)).train()
        step = TrainingStep(flow, options, batch, manual_backward=manual)
        steps[name] = lambda step=step: step(x)
    compare(f"MAF+BN training step, D={n_features}, H={n_units}, batch {batch}", steps,
            n_calls=30, rounds=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {args.threads} thread(s); "
          "microseconds per call, median of alternating rounds\n")
    print("| what | microseconds |")
    print("|---|---|")
    for n_features in (10, 62):
        adam(n_features)
    for n_features in (2, 10, 27, 62):
        first_layer(n_features)
    for n_features in (10, 62):
        soft_clamp(n_features)
        batch_statistics(n_features)
    torch.set_grad_enabled(True)
    whole_step(2, 4, 8)
    for n_features in (10, 62):
        whole_step(n_features, H, BATCH)


if __name__ == "__main__":
    main()
