"""skmaf against its peers: density quality, speed and memory, side by side.

For every data set and model: test mean log-likelihood ± 2 standard errors and the
median, epochs, training throughput (rows over whole epochs, validation included),
log-density throughput (one batch of 10,000 rows), sampling throughput (10,000
samples) and peak memory. Each (data set, model) pair runs in a fresh process, so
its peak RSS above the loaded data is its own; the models run in alternating order
(A B C, then C B A) so that drift on a shared machine hits all alike. Prints a
Markdown table and writes every figure to a JSON file. Run:

    pip install -e ".[bench]"
    python benchmarks/run.py [--sets paper2d digits 6_cardio ...] [--models ...]
        [--data-dir ../shared/data] [--max-iter 200] [--max-rows 10000] [--threads 1] [--seed 0]
        [--output benchmarks/results.json]

The micro-benchmark of one training step is ``benchmarks/micro.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_THROUGHPUT = 10_000


def _current_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_job(model_name: str, set_name: str, args) -> dict:
    """Fit one model on one data set in this process; return its figures."""
    import datasets
    import peers
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    split = datasets.load(set_name, args.data_dir, max_rows=args.max_rows)
    settings = peers.Settings(max_iter=args.max_iter, seed=args.seed)
    # Everything the process holds before fitting (interpreter, libraries, data) is
    # the baseline; peak memory is what the model adds to it.
    baseline = _current_rss_mib()
    model = peers.MODELS[model_name](settings)
    _, fit_seconds = peers.timed(model.fit, split)
    log_density = model.log_density(split.test)
    throughput_rows = np.resize(split.test, (N_THROUGHPUT, split.n_features))
    density_seconds = peers.best_time(model.log_density, throughput_rows)
    sample_seconds = peers.best_time(model.sample, N_THROUGHPUT)
    mean, error = datasets.mean_and_error(log_density)
    return {
        "data": set_name, "model": model_name, "n_train": len(split.train),
        "n_features": split.n_features,
        "test_log_likelihood": mean, "two_standard_errors": error,
        "median_log_likelihood": float(np.median(log_density)),
        "finite": bool(np.all(np.isfinite(log_density))),
        "epochs": model.n_iter, "fit_seconds": fit_seconds,
        "training_rows_per_second": (model.rows_trained / fit_seconds
                                     if model.rows_trained else None),
        "density_rows_per_second": N_THROUGHPUT / density_seconds,
        "samples_per_second": N_THROUGHPUT / sample_seconds,
        "peak_memory_mib": _peak_rss_mib() - baseline,
        "settings": asdict(settings),
    }


def true_density_row(set_name: str, args) -> dict | None:
    import datasets

    split = datasets.load(set_name, args.data_dir, max_rows=args.max_rows)
    if split.true_log_density is None:
        return None
    log_density = split.true_log_density(split.test)
    mean, error = datasets.mean_and_error(log_density)
    return {"data": set_name, "model": "true density", "test_log_likelihood": mean,
            "two_standard_errors": error,
            "median_log_likelihood": float(np.median(log_density))}


def _in_child(model_name, set_name, args) -> dict:
    command = [sys.executable, str(HERE / "run.py"), "--job", model_name, set_name,
               "--max-iter", str(args.max_iter), "--threads", str(args.threads),
               "--seed", str(args.seed)]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    if args.max_rows:
        command += ["--max-rows", str(args.max_rows)]
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"data": set_name, "model": model_name, "error": done.stderr.strip()[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(value, spec):
    return "" if value is None else format(value, spec)


def markdown_row(result: dict) -> str:
    if "error" in result:
        return f"| {result['data']} | {result['model']} | failed: " \
               f"{result['error'].splitlines()[-1]} |||||||"
    log_lik = f"{result['test_log_likelihood']:.3f} ± {result['two_standard_errors']:.3f}"
    cells = [
        result["data"], result["model"], log_lik,
        _cell(result.get("median_log_likelihood"), ".3f"),
        _cell(result.get("epochs"), "d"),
        _cell(result.get("training_rows_per_second"), ",.0f"),
        _cell(result.get("density_rows_per_second"), ",.0f"),
        _cell(result.get("samples_per_second"), ",.0f"),
        _cell(result.get("peak_memory_mib"), ".0f"),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| data | model | test log-lik ± 2 s.e. | median | epochs | train rows/s "
          "| log-density rows/s | samples/s | peak MiB |\n"
          "|---|---|---|---|---|---|---|---|---|")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def main():
    import datasets
    import peers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=None,
                        help="data sets (default: paper2d, digits and every .npz in --data-dir)")
    parser.add_argument("--models", nargs="+", default=peers.DEFAULT_MODELS,
                        choices=list(peers.MODELS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--max-rows", type=int, default=None,
                        help="subsample larger sets to this many rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0,
                        help="the models' seed (initialisation, shuffling, skmaf's validation "
                             "split); the data's split stays fixed")
    parser.add_argument("--output", default=str(HERE / "results.json"))
    parser.add_argument("--job", nargs=2, metavar=("MODEL", "SET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(*args.job, args)))
        return

    sets = args.sets or ["paper2d", "digits"] + datasets.available(args.data_dir)
    print(f"{time.strftime('%Y-%m-%d')}, {machine()}, {args.threads} thread(s), "
          f"max_iter={args.max_iter}, max_rows={args.max_rows}\n")
    print(HEADER, flush=True)
    results = []
    for position, set_name in enumerate(sets):
        row = true_density_row(set_name, args)
        if row is not None:
            results.append(row)
            print(markdown_row(row), flush=True)
        order = args.models if position % 2 == 0 else args.models[::-1]
        for model_name in order:
            result = _in_child(model_name, set_name, args)
            results.append(result)
            print(markdown_row(result), flush=True)
    Path(args.output).write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "threads": args.threads,
         "max_iter": args.max_iter, "max_rows": args.max_rows, "results": results}, indent=1))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
