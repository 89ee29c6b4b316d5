"""Peak memory and time of `metricattack run` as the gallery grows (issue 13: memory must not grow with it).

    python benchmarks/bench_memory.py BASE [--sizes 1000 10000 80000] [--work DIR] [--threads 1]

BASE is a synthetic data set written once by ``metricattack synth --out BASE --train-ids 2 --test-ids 1490``
(about 10,000 gallery images at 128x64; synth stops at 1,500 identities, Market-1501's 4-digit pids). Each
size N is a ``folder`` data set of symbolic links to BASE's images: its identities in order, repeated with
new pids until the gallery holds N images, with their queries. Each size runs in a fresh process:

    metricattack run --dataset folder --data-root DIR --config fgsm.yaml --chunk-size 1024 --examples 0

(the bundled default model; one setting, FGSM eps 4 on the gallery side: every gallery image of a queried
identity is attacked, evaluated and measured for perceptibility). Peak RSS is the process's own VmHWM
from /proc/self/status (read by that process, so nothing of the launcher's is counted). The table is
appended to benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from results_file import append_section

CHILD = """
import json, sys, time
from metricattack.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"code": code, "seconds": time.perf_counter() - started, "peak_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def build_folder(base: Path, size: int, out: Path) -> tuple[int, int]:
    """A folder data set of links to BASE's test images with about ``size`` gallery images: (queries, gallery)."""
    from metricattack.data import load_dataset

    data = load_dataset("market1501", base)
    by_pid: dict[int, dict[str, list]] = {}
    for side, samples in (("query", data.query), ("gallery", data.gallery)):
        for sample in samples:
            by_pid.setdefault(sample.pid, {"query": [], "gallery": []})[side].append(sample)
    counts = {"query": 0, "gallery": 0}
    for side in counts:
        (out / side).mkdir(parents=True, exist_ok=True)
    replica = 0
    while counts["gallery"] < size:
        for pid, sides in sorted(by_pid.items()):
            if counts["gallery"] >= size:
                break
            new_pid = pid + 10_000 * replica if pid > 0 else 0  # distractors stay pid 0
            for side, samples in sides.items():
                for sample in samples:
                    link = out / side / f"{new_pid:05d}_c{sample.camid + 1}_{counts[side]:06d}.png"
                    link.symlink_to(Path(sample.path).resolve())
                    counts[side] += 1
        replica += 1
    return counts["query"], counts["gallery"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 80_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-memory"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = args.work / "fgsm.yaml"
    args.work.mkdir(parents=True, exist_ok=True)
    config.write_text("settings: [{attack: fgsm, eps: 4, side: gallery}]\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    for size in args.sizes:
        folder = args.work / f"g{size}"
        if not folder.is_dir():
            counts = build_folder(args.base, size, folder)
        else:
            counts = tuple(len(list((folder / side).iterdir())) for side in ("query", "gallery"))
        out = args.work / f"run{size}-{time.strftime('%H%M%S')}"
        argv = ["run", "--dataset", "folder", "--data-root", str(folder), "--config", str(config), "--out", str(out),
                "--chunk-size", "1024", "--examples", "0", "--no-progress", "--seed", "0"]  # fmt: skip
        done = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"size {size} failed:\n{done.stderr[-2000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        features_mb = (counts[0] + counts[1]) * 128 * 4 / 2**20
        print(size, counts, measured, flush=True)
        rows.append(f"| {counts[1]:,} | {counts[0]:,} | {measured['seconds']:.0f} | {measured['peak_mb']:.0f} | {features_mb:.1f} |")
    load = os.getloadavg()[0]
    command = "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:])
    import torch

    append_section(
        [
            f"\n## Memory of `metricattack run` against gallery size ({time.strftime('%Y-%m-%d')})\n",
            f"Command: `{command.strip()}`  ",
            f"Machine: nproc {os.cpu_count()}, OMP_NUM_THREADS={args.threads}, CPU, torch {torch.__version__}, "
            f"1-minute load average {load:.1f} at the end.  ",
            "One setting (FGSM eps 4, gallery side) with the bundled model at 128x64, chunks of 1,024 images; "
            "peak RSS = the run process's own VmHWM; features = (queries + gallery) x 128 float32.\n",
            "| gallery images | queries | seconds | peak RSS (MB) | features (MB) |",
            "|---|---|---|---|---|",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
