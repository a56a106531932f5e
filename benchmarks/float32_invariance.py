"""When is a float32 matrix product batch-invariant, and what does float32 scoring gain?

1. For ``x @ W.T + b`` with ``x`` of shape (M, K) and ``W`` of shape (N, K), prints
   the shapes for which some row's result depends on the batch it is in (its
   size, or the row's position in it): the rule that
   ``skmaf/flows/evaluation.py`` relies on (pad ``W`` to 12+ rows, batches to a
   multiple of 8 rows).
2. Scores rows alone and inside a batch with a MAF's float32 scoring copy, with
   and without that padding, and prints the largest difference.
3. Prints the scoring throughput of the float64 model and of the float32 copy.

Run on the machine whose BLAS you want to check:

    OMP_NUM_THREADS=1 python benchmarks/float32_invariance.py
"""

import time

import torch

from skmaf._accelerated import scoring
from skmaf.flows import build_maf

SIZES = (1, 2, 3, 4, 5, 8, 10, 12, 16, 17, 33, 64, 100)


def varies_with_batch(n_in: int, n_out: int, n_rows: int = 1024) -> list[int]:
    """Batch sizes (1-3, or multiples of 8) at which some row's bits change."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_rows, n_in, generator=generator)
    weight = torch.randn(n_out, n_in, generator=generator)
    bias = torch.randn(n_out, generator=generator)
    whole = torch.addmm(bias, x, weight.t())
    varying = []
    for batch in (1, 2, 3, 8, 16, 64, 1016):
        for start in (0, 8, n_rows - batch):
            part = torch.addmm(bias, x[start:start + batch], weight.t())
            if not torch.equal(part, whole[start:start + batch]):
                varying.append(batch)
                break
    shifted = torch.roll(torch.arange(n_rows), 3)
    if not torch.equal(torch.addmm(bias, x[shifted], weight.t()), whole[shifted]):
        varying.append(n_rows)
    return varying


@torch.no_grad()
def largest_batch_effect(model, x, row_multiple: int) -> float:
    def score(rows):
        padding = rows.new_zeros(-len(rows) % row_multiple, rows.shape[1])
        u, log_det = model(torch.cat([rows, padding]))
        return (model.base.log_prob(u.double()) + log_det.double())[: len(rows)]

    in_batch = score(x)
    alone = torch.cat([score(x[i:i + 1]) for i in range(len(x))])
    return (in_batch - alone).abs().max().item()


def main():
    torch.set_num_threads(1)
    print("1. Batch sizes at which x @ W.T + b changes a row's bits (K inputs, N outputs);")
    print("   1024 = the row's position in a batch of 1,024 matters.")
    print("K \\ N " + "".join(f"{n:>16}" for n in SIZES))
    for n_in in SIZES:
        cells = [",".join(map(str, varies_with_batch(n_in, n_out))) or "-" for n_out in SIZES]
        print(f"{n_in:>5} " + "".join(f"{cell:>16}" for cell in cells))

    print("\n2. Largest |score alone - score in a batch of 300| of a float32 MAF copy")
    for n_features, n_units in ((3, 8), (10, 8), (10, 100), (62, 100)):
        flow = build_maf(n_features, 2, 2, n_units, generator=torch.Generator().manual_seed(0))
        flow.freeze_statistics(torch.randn(500, n_features))
        x = 3 * torch.randn(300, n_features)
        padded = scoring.scoring_copy(flow.double())
        scoring_min_out, scoring.MIN_OUT_FEATURES = scoring.MIN_OUT_FEATURES, 0
        try:
            unpadded = scoring.scoring_copy(flow)
        finally:
            scoring.MIN_OUT_FEATURES = scoring_min_out
        print(f"   D={n_features:>2} H={n_units:>3}: padded as skmaf does "
              f"{largest_batch_effect(padded, x, scoring.ROW_MULTIPLE):.1e}, "
              f"unpadded {largest_batch_effect(unpadded, x, 1):.1e}")

    print("\n3. Scoring 10,000 rows (D=10, K=5, L=2, H=100, batch norm), chunks of 1,024")
    flow = build_maf(10, 5, 2, 100, generator=torch.Generator().manual_seed(0))
    flow.freeze_statistics(torch.randn(2000, 10))
    flow = flow.double()
    x = torch.randn(10_000, 10, dtype=torch.float64)
    copy = scoring.scoring_copy(flow)
    candidates = {
        "float64 model": lambda chunk: flow.log_prob(chunk),
        "float32 copy": lambda chunk: copy.base.log_prob(copy(chunk.float())[0].double()),
    }
    for name, log_prob in candidates.items():
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            with torch.no_grad():
                for chunk in x.split(1024):
                    log_prob(chunk)
            seconds.append(time.perf_counter() - start)
        print(f"   {name}: {len(x) / min(seconds):,.0f} rows/s")


if __name__ == "__main__":
    main()
