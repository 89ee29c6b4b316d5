"""Clean and white-box robust metrics of (defended) models on the default data, with their training cost.

    python benchmarks/bench_defenses.py default runs/est/model ... [--subset 50] [--seed 0] [--write]

Each model (``default``, ``default-robust`` or a checkpoint of ours) is evaluated clean, under PGD
(eps 8, 50 steps of 2, 5 random restarts, the worst iterate per image kept) and under the paper's
I-FGSM (eps 5, steps of 1, 6 of them), both on the gallery side, untargeted, images rounded to 8 bits.
``--subset N`` keeps N test identities drawn with ``--seed`` (their queries and gallery images, no
distractors), since the full PGD evaluation costs 255 gradient passes per gallery image. Training cost
comes from the checkpoint's JSON (the defense's inner steps + 1, and the wall time it recorded).
``--write`` appends the table to benchmarks/RESULTS.md with this command. To evaluate models in parallel
processes, ``--save ROWS.json`` each, then ``--combine ROWS.json ... --write`` builds one table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import replace

import torch
from results_file import append_section

from metricattack.experiment.setting import AttackSetting
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.options import EvaluationProtocol, Reading
from metricattack.experiment.registry import run_attack
from metricattack.experiment.scoring import result_rows
from metricattack.models.deployment import Deployment
from metricattack.data.base import ReIDData
from metricattack.defenses import build_defense
from metricattack.experiment.inputs import load_data, model_from_reference
from metricattack.models import bundled_checkpoint, read_metadata
from metricattack.system.runtime import choose_device, seed_everything

SETTINGS = {
    "pgd": ("PGD-50x5 eps 8", AttackSetting("pgd", 8.0, "gallery", steps=50, step_size=2.0, restarts=5)),
    "ifgsm": ("I-FGSM eps 5", AttackSetting("ifgsm", 5.0, "gallery")),
}


def identity_subset(data: ReIDData, count: int, seed: int) -> ReIDData:
    """The test split restricted to ``count`` query identities drawn with ``seed`` (no distractors)."""
    pids = sorted({s.pid for s in data.query})
    chosen = set(random.Random(seed).sample(pids, min(count, len(pids))))
    return replace(data, query=[s for s in data.query if s.pid in chosen], gallery=[s for s in data.gallery if s.pid in chosen])


def training_cost(reference: str) -> tuple[str, str, str]:
    """(defense name, passes per image (inner steps + 1), recorded training seconds: CPU (wall)) from a checkpoint's JSON."""
    meta = read_metadata(bundled_checkpoint(reference) or reference)
    settings = dict(meta.get("defense") or {"name": "none"})
    name = settings.pop("name")
    passes = "1" if name == "none" else str(build_defense(name, **settings).cost)
    cpu, wall = meta.get("train_cpu_seconds"), meta.get("train_seconds")
    seconds = " ".join(text for text in (cpu and f"{cpu:.0f}", wall and f"({wall:.0f})") if text)
    return name, passes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="default, default-robust or checkpoints of ours")
    parser.add_argument("--subset", type=int, help="evaluate on this many test identities (seeded)")
    parser.add_argument("--attacks", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), help="which attacks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--save", help="also write the rows and the setup to this JSON file")
    parser.add_argument("--combine", nargs="+", default=[], help="build the table from files written by --save")
    args = parser.parse_args()
    device = choose_device(args.device)
    data = load_data(None, None, progress=False)
    if args.subset:
        data = identity_subset(data, args.subset, args.seed)
    saved = [json.loads(open(path, encoding="utf-8").read()) for path in args.combine]
    rows, saved_commands = [row for record in saved for row in record["rows"]], [record["command"] for record in saved]
    for reference in args.models:
        seed_everything(args.seed)
        named = model_from_reference(reference)
        campaign = Campaign(data, [named], [named], Deployment(device), Reading(args.batch_size, progress=False),
                            EvaluationProtocol(seed=args.seed))
        clean = campaign.clean_metrics(named).mAP
        cells = [reference, *training_cost(reference), f"{100 * clean:.1f}"]
        for _, setting in (SETTINGS[a] for a in args.attacks):
            started = time.perf_counter()
            (row,) = result_rows(campaign, run_attack(campaign, setting, campaign.sources), campaign.sources)
            cells += [f"{100 * row['mAP']:.1f}", f"{100 * row['mAP'] / clean:.1f} %"]
            print(f"{reference} {setting.key}: mAP {100 * row['mAP']:.1f} ({time.perf_counter() - started:.0f} s)", flush=True)
        rows.append(cells)
    if args.save:
        with open(args.save, "w", encoding="utf-8") as handle:
            json.dump({"command": sys.argv[1:], "rows": rows}, handle)
    header = ["model", "defense", "passes per image (inner steps + 1)", "training CPU s (wall s)", "clean mAP"]
    for name, _ in (SETTINGS[a] for a in args.attacks):
        header += [f"{name} mAP", f"{name} ÷ clean"]
    split = f"subset of {args.subset} test identities (seed {args.seed})" if args.subset else "full test split"
    lines = [
        "",
        f"## Defenses: clean and white-box robust mAP ({time.strftime('%Y-%m-%d')})",
        "",
        *(f"Command: `python benchmarks/bench_defenses.py {' '.join(c)}`  " for c in saved_commands),
        f"Command: `python benchmarks/bench_defenses.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {torch.get_num_threads()} torch threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"device {device}, torch {torch.__version__}. Data: default synthetic, {split}: "
        f"{len(data.query)} queries, {len(data.gallery)} gallery images. Attacks on the gallery side, untargeted, "
        "8-bit images; PGD keeps each image's worst iterate over all steps and restarts. "
        "Training seconds as recorded in the checkpoint (machine shared, so only roughly comparable).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]
    if args.write:
        append_section(lines)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
