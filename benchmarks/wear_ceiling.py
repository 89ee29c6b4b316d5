"""The ceiling of a wearable print: ``metricattack wear`` with the print optimised on the very renders that are
scored (the held-out cameras' evaluation draws), a white-box oracle no attacker has. When even this misses a
target, no honest optimisation (fresh draws, training cameras) will reach it: the limit is the print's area
and the model, not the search.

    python benchmarks/wear_ceiling.py [any metricattack wear options, e.g. --identities 10 --area patch]

Each step's batch is the held-out renders of the evaluation (``--eval-renders`` per camera of
``--test-cameras``, the same draws ``score_print`` renders), so ``--renders`` and ``--random-cameras`` have no
effect. The summary is appended to benchmarks/RESULTS.md with the command.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from results_file import append_section

import metricattack.wearing.optimise as optimise
from metricattack.cli import main
from metricattack.cli.parser import build_parser
from metricattack.data.synthetic.compositor import stack_scenes
from metricattack.data.synthetic.render import render_wearer
from metricattack.data.synthetic.texture import AREAS, Texture
from metricattack.wearing.renders import BLANK, UNSEEN, camera_ids, stream_seed
from metricattack.wearing.setting import default_cameras


def scored_batches(test_cameras: tuple[int, ...] | None, per_camera: int, seed: int):
    """A stand-in for ``training_batch`` that returns the wearer's scored held-out renders at every step
    (``test_cameras`` None: the default held-out cameras of the data)."""
    cache = {}

    def batch(config, pid, area, cameras, count, step_seed, step, device="cpu", random=0):
        if pid not in cache:
            held_out = test_cameras or default_cameras(config.cameras)[1]
            total = per_camera * len(held_out)
            renders = render_wearer(config, pid, Texture(BLANK, AREAS[area]), held_out, total, stream_seed(seed, UNSEEN),
                                    fresh_tracks=True)  # fmt: skip
            cache[pid] = (stack_scenes([scene for _, scene in renders], device, torch.float32), camera_ids(held_out, total))
        return cache[pid]

    return batch


def pairs(summary: dict, wearers: int) -> str:
    """Impersonation pairs reaching the target at rank 5, as "k of n" ("-" when evading)."""
    if summary.get("pairs_rank5") is None:
        return "-"
    return f"{round(summary['pairs_rank5'] * wearers)} of {wearers}"


def main_ceiling() -> int:
    argv = ["wear", *sys.argv[1:]]
    args = build_parser()[0].parse_args(argv)
    if args.out is None:
        print("wear_ceiling.py: give --out DIR (its results.json is summarised)", file=sys.stderr)
        return 2
    optimise.training_batch = scored_batches(args.test_cameras and tuple(args.test_cameras), args.eval_renders, args.seed)
    started = time.perf_counter()
    code = main(argv)
    if code != 0:
        return code
    record = json.loads((Path(args.out) / "results.json").read_text())
    summary, rows = record["summary"], record["results"]
    points = lambda key: f"{100 * summary[key]:.1f}" if summary.get(key) is not None else "-"  # noqa: E731
    append_section([
        f"\n## Wearable print ceiling: optimised on the scored renders ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `python benchmarks/wear_ceiling.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {torch.get_num_threads()} torch thread(s), CPU, torch {torch.__version__}; {len(rows)} wearers, goal "
        f"{record['setting']['goal']}, area {record['setting']['area']}, {record['setting']['steps']} steps, "
        f"{record['setting']['texture_size'][0]}x{record['setting']['texture_size'][1]} texels. Each step optimises on the held-out "
        "renders that are then scored (a white-box oracle), so this bounds what an honest run can reach.\n",
        "| held-out rank-1 drop | random drop | impersonation pairs at rank 5 | wall |",
        "|---|---|---|---|",
        f"| {points('rank1_drop')} | {points('random_drop')} | {pairs(summary, len(rows))} | {time.perf_counter() - started:.0f} s |",
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main_ceiling())
