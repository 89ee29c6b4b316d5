"""Time retrieval evaluation (CMC, mAP, mINP) on Market-1501- and MSMT17-sized problems.

    python benchmarks/bench_evaluation.py [--sizes market msmt17] [--seed 0] [--repeats 1]
                                          [--torchreid-cython DIR]

Features are random (dimension 512, float32, standard normal); identities and cameras are drawn
uniformly at random, with no junk. Rankings of random features are meaningless, but the cost of
evaluation hardly depends on them.

Routes, each measured in a fresh Python process:

- ``matrix``: ``pairwise_distance`` builds the full (Q,G) float32 matrix, then ``evaluate_ranking``;
- ``features``: ``evaluate_features`` computes the distance rows block by block and never holds the
  matrix (for MSMT17 the matrix alone would be 11,659 x 82,161 x 4 bytes = 3.8 GB);
- ``torchreid-cython`` (with ``--torchreid-cython DIR``, the directory holding torchreid's compiled
  ``rank_cy`` module, built from deep-person-reid's ``torchreid/metrics/rank_cylib``): the same
  ``pairwise_distance`` matrix, then torchreid's ``evaluate_cy``; Market size only (at MSMT17 size
  its int64 argsort and match matrices would need 15 GB).

Peak RSS is the worker's own ``VmHWM`` from /proc/self/status, reset (``clear_refs``) once the
features exist: ``ru_maxrss`` would also count the launching process's high-water mark, which
Linux passes on through fork and exec. "baseline RSS" is the RSS at that point. Wall time is
the best of ``--repeats``; CPU time (summed over threads) is that run's, and less sensitive than wall
time to other work on the machine. The results are appended to
benchmarks/RESULTS.md with the command, the thread count and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DIM = 512
# name: (queries, gallery images, identities, cameras, routes to measure)
SIZES = {
    "market": (3_368, 15_913, 751, 6, ("matrix", "features", "torchreid-cython")),
    "msmt17": (11_659, 82_161, 3_060, 15, ("features",)),
}


def memory_mb(field: str) -> float:
    """A field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


def reset_peak() -> None:
    """Start this process's VmHWM again from its current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(size: str, route: str, seed: int, cython_dir: str | None) -> dict:
    """One measurement, meant to run alone in its process."""
    import torch

    from metricattack.evaluation import evaluate_features, evaluate_ranking, pairwise_distance

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
    evaluate_cy = None
    if route == "torchreid-cython":
        sys.path.insert(0, cython_dir)
        from rank_cy import evaluate_cy  # noqa: PLC0415 (optional, built outside the project)
    baseline = memory_mb("VmRSS")
    reset_peak()
    started, cpu_started = time.perf_counter(), time.process_time()
    distance_seconds = distance_cpu = None
    if route == "features":
        metrics = evaluate_features(query_features, gallery_features, *labels)
        result = {"mAP": metrics.mAP, "rank1": metrics.cmc[0], "mINP": metrics.mINP}
    else:
        distmat = pairwise_distance(query_features, gallery_features)  # (Q,G) float32
        distance_seconds = time.perf_counter() - started
        distance_cpu = time.process_time() - cpu_started
        if route == "matrix":
            metrics = evaluate_ranking(distmat, *labels)
            result = {"mAP": metrics.mAP, "rank1": metrics.cmc[0], "mINP": metrics.mINP}
        else:
            cmc, mAP = evaluate_cy(distmat.numpy(), *(label.numpy() for label in labels), 50)
            result = {"mAP": float(mAP), "rank1": float(cmc[0]), "mINP": None}
    return {
        "size": size,
        "route": route,
        "queries": num_query,
        "gallery": num_gallery,
        "distance_seconds": distance_seconds,
        "distance_cpu_seconds": distance_cpu,
        "total_seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "baseline_mb": baseline,
        "peak_mb": memory_mb("VmHWM"),
        **result,
    }


def run_isolated(size: str, route: str, seed: int, cython_dir: str | None) -> dict:
    """``measure`` in a fresh Python process; returns its result."""
    command = [sys.executable, __file__, "--worker", size, route, "--seed", str(seed)]
    if cython_dir:
        command += ["--torchreid-cython", cython_dir]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> list[str]:
    """Markdown rows, one per measurement."""
    lines = [
        "| problem (Q x G) | route | distances (s) | total (s) | distances CPU (s) | total CPU (s) | baseline RSS (MB) "
        "| peak RSS (MB) | mAP | rank-1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        distances, distances_cpu = (
            ("in total", "in total") if r["distance_seconds"] is None
            else (f"{r['distance_seconds']:.2f}", f"{r['distance_cpu_seconds']:.1f}")
        )  # fmt: skip
        lines.append(
            f"| {r['size']} ({r['queries']:,} x {r['gallery']:,}) | {r['route']} | {distances} "
            f"| {r['total_seconds']:.2f} | {distances_cpu} | {r['cpu_seconds']:.1f} | {r['baseline_mb']:.0f} "
            f"| {r['peak_mb']:.0f} "
            f"| {r['mAP']:.7f} | {r['rank1']:.6f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per route; the fastest is reported")
    parser.add_argument("--torchreid-cython", metavar="DIR", help="directory with torchreid's compiled rank_cy")
    parser.add_argument("--worker", nargs=2, metavar=("SIZE", "ROUTE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.seed, args.torchreid_cython)))
        return
    from results_file import append_section

    loads = [os.getloadavg()[0]]  # other work on the machine slows the timings
    results = []
    for size in args.sizes:
        for route in SIZES[size][4]:
            if route == "torchreid-cython" and not args.torchreid_cython:
                continue
            runs = [run_isolated(size, route, args.seed, args.torchreid_cython) for _ in range(args.repeats)]
            results.append(min(runs, key=lambda run: run["total_seconds"]))
            loads.append(os.getloadavg()[0])
            print(table(results[-1:])[-1], flush=True)
    threads = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads(), torch.__version__)"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    threads_variable = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = threads_variable + "python benchmarks/bench_evaluation.py " + " ".join(sys.argv[1:])
    lines = [
        f"\n## Retrieval evaluation ({time.strftime('%Y-%m-%d %H:%M %Z')})\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {threads[0]} torch threads, CPU, torch {threads[1]}, "
        f"1-minute load average {' -> '.join(f'{load:.1f}' for load in loads)} (at the start and after each route).  ",
        f"Random float32 features of dimension {DIM}, uniform random identities and cameras (Market: 751 ids, "
        "6 cameras; MSMT17: 3,060 ids, 15 cameras), euclidean distance, standard AP, max_rank 50. "
        "`matrix` = `evaluate_ranking(pairwise_distance(...))` with the full (Q,G) matrix; `features` = "
        "`evaluate_features`, distance rows computed in blocks of 256 queries, no full matrix; "
        "`torchreid-cython` = torchreid's compiled `evaluate_cy` on the same matrix. "
        f"Best of {args.repeats} run(s) per route, each in a fresh process; peak RSS = that process's own VmHWM "
        "from when the features exist; baseline = its RSS then.\n",
        *table(results),
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
