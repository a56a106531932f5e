"""Is float32 evaluation batch-invariant when every pass has the same shape?

Scores rows alone and inside a batch with a MAF in float32, each pass padded to
1,024 rows (so every matrix product has the same shape), and prints the largest
difference; then the float32 and float64 throughput of that evaluation. This is
the measurement behind skmaf's float64 evaluation (benchmarks/README.md). Run:

    OMP_NUM_THREADS=1 python benchmarks/float32_invariance.py
"""
import torch, numpy as np, time
from skmaf.flows import build_maf
torch.set_num_threads(1)
CH = 1024
def padded_eval(model, x):
    out = []
    for start in range(0, len(x), CH):
        chunk = x[start:start+CH]
        n = len(chunk)
        if n < CH:
            chunk = torch.cat([chunk, chunk.new_zeros(CH - n, chunk.shape[1])])
        out.append(model.log_prob(chunk)[:n])
    return torch.cat(out)
worst = 0
for D in (3, 10, 62):
    for H in (8, 100, 512):
        m = build_maf(D, 2, 2, H, batch_norm=True, generator=torch.Generator().manual_seed(0)).float()
        m.freeze_statistics(torch.randn(500, D))
        x = 3 * torch.randn(300, D)
        with torch.no_grad():
            batch = padded_eval(m, x)
            alone = torch.cat([padded_eval(m, x[i:i+1]) for i in range(0, 300, 7)])
            plain_alone = torch.cat([m.log_prob(x[i:i+1]) for i in range(0, 300, 7)])
            plain_batch = m.log_prob(x)
        d_pad = (batch[::7] - alone).abs().max().item()
        d_plain = (plain_batch[::7] - plain_alone).abs().max().item()
        print(f"D={D} H={H}: padded fixed-shape max|diff|={d_pad:.1e}; plain float32 {d_plain:.1e}")
m = build_maf(10, 5, 2, 100, batch_norm=False, generator=torch.Generator().manual_seed(0))
x = torch.randn(10000, 10)
with torch.no_grad():
    for dt in (torch.float32, torch.float64):
        mm = m.to(dt); xx = x.to(dt)
        ts=[]
        for _ in range(3):
            t=time.perf_counter(); padded_eval(mm, xx); ts.append(time.perf_counter()-t)
        print(dt, f"{10000/min(ts):,.0f} rows/s")
