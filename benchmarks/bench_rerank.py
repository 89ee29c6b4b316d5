"""Time and peak memory of k-reciprocal re-ranking at Market-1501 size.

    python benchmarks/bench_rerank.py [--queries 3368] [--gallery 15913] [--dim 512] [--seed 0]

Features are clustered like identities (751 centres, standard normal, plus 0.6 x standard normal
noise per image, L2-normalised euclidean distance), so neighbourhoods overlap as with a trained model;
the cost of the sparse steps follows the size of the k-reciprocal sets. The measurement runs in a
fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own. A dense implementation
(the authors' numpy code) holds several (N,N) float32 matrices: 19,281^2 x 4 bytes = 1.5 GB each.
The results are appended to benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from results_file import append_section

from metricattack.evaluation.rerank import k_reciprocal_distances

IDENTITIES = 751


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(num_query: int, num_gallery: int, dim: int, seed: int) -> dict:
    """One measurement, meant to run alone in its process."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(IDENTITIES, dim, generator=generator)
    identities = torch.randint(IDENTITIES, (num_query + num_gallery,), generator=generator)
    features = centres[identities] + 0.6 * torch.randn(num_query + num_gallery, dim, generator=generator)
    baseline = peak_rss_mb()
    started = time.perf_counter()
    distances = k_reciprocal_distances(features[:num_query], features[num_query:], "euclidean", normalize=True)
    return {"seconds": time.perf_counter() - started, "baseline_mb": baseline, "peak_mb": peak_rss_mb(),
            "finite": bool(torch.isfinite(distances).all())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3_368)
    parser.add_argument("--gallery", type=int, default=15_913)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.queries, args.gallery, args.dim, args.seed)))
        return
    load = os.getloadavg()[0]
    options = ["--queries", str(args.queries), "--gallery", str(args.gallery), "--dim", str(args.dim), "--seed", str(args.seed)]
    finished = subprocess.run([sys.executable, __file__, "--worker", *options], check=True, capture_output=True, text=True)
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    row = (f"| {args.queries:,} x {args.gallery:,} | {args.dim} | {result['seconds']:.1f} | {result['baseline_mb']:.0f} "
           f"| {result['peak_mb']:.0f} | {result['finite']} |")  # fmt: skip
    print(row)
    command = "python benchmarks/bench_rerank.py " + " ".join(sys.argv[1:])
    append_section([
        f"\n## k-reciprocal re-ranking ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {torch.get_num_threads()} torch threads, CPU, "
        f"torch {torch.__version__}, 1-minute load average {load:.1f} at the start (shared machine: times are upper bounds).  ",
        f"Features clustered around {IDENTITIES} identity centres, L2-normalised euclidean distance, k1 20, k2 6, "
        "lambda 0.3. Peak RSS = `ru_maxrss` of a fresh process; baseline = its RSS once the features exist.\n",
        "| problem (Q x G) | dim | seconds | baseline RSS (MB) | peak RSS (MB) | all finite |",
        "|---|---|---|---|---|---|",
        row,
    ])  # fmt: skip


if __name__ == "__main__":
    main()
