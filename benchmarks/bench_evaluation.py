"""Time retrieval evaluation (CMC, mAP, mINP) on Market-1501- and MSMT17-sized problems.

    python benchmarks/bench_evaluation.py [--sizes market msmt17] [--seed 0]

Features are random (dimension 512, float32, standard normal); identities and cameras are drawn
uniformly at random, with no junk. Rankings of random features are meaningless, but the cost of
evaluation does not depend on them: every query's gallery row is fully sorted either way.

Each measurement runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``, which
also sees torch's allocations, unlike tracemalloc) is its own:

- ``matrix``: ``pairwise_distance`` builds the full (Q,G) float32 matrix, then ``evaluate_ranking``;
- ``features``: ``evaluate_features`` computes the distance rows chunk by chunk and never holds the
  matrix (for MSMT17 the matrix alone would be 11,659 x 82,161 x 4 bytes = 3.8 GB).

"baseline RSS" is measured after the features and labels exist, before any distance is computed.
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

from metricattack.evaluation import evaluate_features, evaluate_ranking, pairwise_distance
from metricattack.evaluation.ranking import _auto_chunk_size

DIM = 512
# name: (queries, gallery images, identities, cameras, routes to measure)
SIZES = {
    "market": (3_368, 15_913, 751, 6, ("matrix", "features")),
    "msmt17": (11_659, 82_161, 3_060, 15, ("features",)),
}


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(size: str, route: str, seed: int) -> dict:
    """One measurement, meant to run alone in its process."""
    num_query, num_gallery, num_ids, num_cameras, _ = SIZES[size]
    generator = torch.Generator().manual_seed(seed)
    query_features = torch.randn(num_query, DIM, generator=generator)
    gallery_features = torch.randn(num_gallery, DIM, generator=generator)
    labels = (
        torch.randint(0, num_ids, (num_query,), generator=generator),
        torch.randint(0, num_ids, (num_gallery,), generator=generator),
        torch.randint(0, num_cameras, (num_query,), generator=generator),
        torch.randint(0, num_cameras, (num_gallery,), generator=generator),
    )
    baseline = peak_rss_mb()
    started = time.perf_counter()
    distance_seconds = None
    if route == "matrix":
        distmat = pairwise_distance(query_features, gallery_features)  # (Q,G) float32
        distance_seconds = time.perf_counter() - started
        metrics = evaluate_ranking(distmat, *labels)
    else:
        metrics = evaluate_features(query_features, gallery_features, *labels)
    return {
        "size": size,
        "route": route,
        "queries": num_query,
        "gallery": num_gallery,
        "chunk": _auto_chunk_size(None, num_gallery),
        "distance_seconds": distance_seconds,
        "total_seconds": time.perf_counter() - started,
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
        "mAP": metrics.mAP,
        "num_queries": metrics.num_queries,
    }


def run_isolated(size: str, route: str, seed: int) -> dict:
    """``measure`` in a fresh Python process; returns its result."""
    command = [sys.executable, __file__, "--worker", size, route, "--seed", str(seed)]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> list[str]:
    """Markdown rows, one per measurement."""
    lines = [
        "| problem (Q x G) | route | chunk (queries) | distances (s) | total (s) | baseline RSS (MB) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        distances = "in total" if r["distance_seconds"] is None else f"{r['distance_seconds']:.1f}"
        lines.append(
            f"| {r['size']} ({r['queries']:,} x {r['gallery']:,}) | {r['route']} | {r['chunk']} | {distances} "
            f"| {r['total_seconds']:.1f} | {r['baseline_mb']:.0f} | {r['peak_mb']:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, metavar=("SIZE", "ROUTE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.seed)))
        return
    load = os.getloadavg()[0]  # other work on the machine slows the timings
    results = []
    for size in args.sizes:
        for route in SIZES[size][4]:
            results.append(run_isolated(size, route, args.seed))
            print(table(results[-1:])[-1], flush=True)
    command = "python benchmarks/bench_evaluation.py " + " ".join(sys.argv[1:])
    lines = [
        f"\n## Retrieval evaluation ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {torch.get_num_threads()} torch threads, CPU, "
        f"torch {torch.__version__}, 1-minute load average {load:.1f} at the start.  ",
        f"Random float32 features of dimension {DIM}, uniform random identities and cameras (Market: 751 ids, "
        "6 cameras; MSMT17: 3,060 ids, 15 cameras), euclidean distance, standard AP, max_rank 50. "
        "`matrix` = `evaluate_ranking(pairwise_distance(...))` with the full (Q,G) matrix; `features` = "
        "`evaluate_features`, distance rows computed per chunk of queries, no full matrix. "
        "Peak RSS = `ru_maxrss` of a fresh process per row; baseline = its RSS once the features exist.\n",
        *table(results),
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
