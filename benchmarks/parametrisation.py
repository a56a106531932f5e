"""How the Gaussian MADE step is parametrised, and what it does to held-out likelihood.

A MAF step maps ``x`` to ``u`` with a shift and a scale from a MADE. The paper
writes ``u = (x - mu) * exp(-alpha)`` with the MADE giving ``mu`` and ``alpha``;
nflows and zuko have the MADE give the shift of ``u`` itself,
``u = x * scale + shift``. The two describe the same flows, but train differently.
This trains nflows' ``MaskedAutoregressiveFlow`` with batch norm (run.py's set-up and
training loop) on dequantized digits with its step written three ways:

* ``nflows``: its own, ``u = x * (softplus(s) + 1e-3) + shift``;
* ``shift, exp``: ``u = x * exp(-7 tanh(a / 7)) + shift``, skmaf's since model format 2;
* ``mu, exp``: ``u = (x - mu) * exp(-7 tanh(a / 7))``, skmaf's before.

and prints the test mean log-likelihood ± 2 standard errors per seed. Run:

    python benchmarks/parametrisation.py [--seeds 0 1 2] [--set digits] [--max-iter 100]
"""

from __future__ import annotations

import argparse

import datasets
import peers
import torch
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform

from skmaf.flows.autoregressive import LOG_SCALE_BOUND as BOUND  # skmaf's own scale bound

_NFLOWS_STEP = MaskedAffineAutoregressiveTransform._elementwise_forward


def _exponential_step(mu_as_output: bool):
    """An ``_elementwise_forward`` for nflows' step with skmaf's bounded exponential scale."""

    def forward(self, inputs, autoregressive_params):
        raw_scale, offset = self._unconstrained_scale_and_shift(autoregressive_params)
        log_scale = -BOUND * torch.tanh(raw_scale / BOUND)
        scale = torch.exp(log_scale)
        outputs = (inputs - offset) * scale if mu_as_output else inputs * scale + offset
        return outputs, log_scale.sum(dim=-1)

    return forward


STEPS = {
    "nflows": _NFLOWS_STEP,
    "shift, exp": _exponential_step(mu_as_output=False),
    "mu, exp": _exponential_step(mu_as_output=True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", default="digits")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = datasets.load(args.set, max_rows=10000)
    print(f"| step | {' | '.join(f'seed {seed}' for seed in args.seeds)} |")
    print("|---|" + "---|" * len(args.seeds))
    for name, step in STEPS.items():
        MaskedAffineAutoregressiveTransform._elementwise_forward = step
        cells = []
        for seed in args.seeds:
            settings = peers.Settings(max_iter=args.max_iter, seed=seed)
            model = peers.nflows_model(settings, batch_norm=True).fit(split)
            mean, error = datasets.mean_and_error(model.log_density(split.test))
            cells.append(f"{mean:.2f} ± {error:.2f}")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    MaskedAffineAutoregressiveTransform._elementwise_forward = _NFLOWS_STEP


if __name__ == "__main__":
    main()
