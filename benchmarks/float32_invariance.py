"""Is float32 evaluation batch-invariant when every pass has the same shape?

Scores rows alone and inside a batch with a MAF in float32, each pass padded to
1,024 rows (so every matrix product has the same shape), and prints the largest
difference; then the float32 and float64 throughput of that evaluation. This is
the measurement behind skmaf's float64 evaluation (benchmarks/README.md). Run:

    OMP_NUM_THREADS=1 python benchmarks/float32_invariance.py
"""

import time

import torch

from skmaf.flows import build_maf

CHUNK = 1024


@torch.no_grad()
def padded_log_prob(model, x):
    """``model.log_prob`` in passes of exactly CHUNK rows, the last one zero-padded."""
    outputs = []
    for chunk in x.split(CHUNK):
        n_rows = len(chunk)
        padded = torch.cat([chunk, chunk.new_zeros(CHUNK - n_rows, chunk.shape[1])])
        outputs.append(model.log_prob(padded)[:n_rows])
    return torch.cat(outputs)


def main():
    torch.set_num_threads(1)
    for n_features in (3, 10, 62):
        for n_units in (8, 100, 512):
            model = build_maf(n_features, 2, 2, n_units,
                              generator=torch.Generator().manual_seed(0))
            model.freeze_statistics(torch.randn(500, n_features))
            x = 3 * torch.randn(300, n_features)
            in_batch = padded_log_prob(model, x)[::7]
            alone = torch.cat([padded_log_prob(model, x[i:i + 1]) for i in range(0, 300, 7)])
            with torch.no_grad():
                plain_batch = model.log_prob(x)[::7]
                plain_alone = torch.cat([model.log_prob(x[i:i + 1]) for i in range(0, 300, 7)])
            print(f"D={n_features} H={n_units}: max |alone - in batch| padded "
                  f"{(in_batch - alone).abs().max():.1e}, unpadded "
                  f"{(plain_batch - plain_alone).abs().max():.1e}")

    model = build_maf(10, 5, 2, 100, batch_norm=False,
                      generator=torch.Generator().manual_seed(0))
    x = torch.randn(10_000, 10)
    for dtype in (torch.float32, torch.float64):
        model, x = model.to(dtype), x.to(dtype)
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            padded_log_prob(model, x)
            seconds.append(time.perf_counter() - start)
        print(f"{dtype}: {len(x) / min(seconds):,.0f} rows/s (D=10, K=5, L=2, H=100)")


if __name__ == "__main__":
    main()
