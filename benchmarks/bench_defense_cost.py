"""CPU time of one training step (loss, backward, optimiser step) per defense, relative to the usual loss.

    python benchmarks/bench_defense_cost.py [--batches 4] [--steps 3 --step-size 3]

Starts from the bundled default model on the default training data, P x K batches of 64 (16 x 4),
augmented as in training. Each defense runs with its defaults, except that --steps / --step-size
(when given) replace the inner steps of the defenses whose default is eps 8 (est, ses, act, hm,
purifier), as in the comparison runs. CPU seconds (``time.process_time``) are the fair measure on a
shared machine. The table is appended to benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
from results_file import append_section

from metricattack.defenses import DEFENSES, build_defense
from metricattack.data.images import read_images
from metricattack.experiment.inputs import load_data
from metricattack.models import load_model
from metricattack.system.runtime import choose_device, keep_freed_memory
from metricattack.training.augment import TrainAugment
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss
from metricattack.training.samplers import RandomIdentitySampler, relabel


def step_seconds(objective, model, images, labels, batches, device) -> float:
    """CPU seconds per training step over ``batches`` (one warm-up step first, not counted)."""
    criterion = ReIDLoss("softmax+triplet", model.classifier.out_features)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    augment, generator = TrainAugment(), torch.Generator().manual_seed(0)
    seconds = 0.0
    for index, batch in enumerate(batches):
        inputs = augment(images[batch].float().div(255), generator).to(device)
        started = time.process_time()
        model.train()
        loss, _ = objective(model, inputs, labels[batch].to(device), criterion, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += (time.process_time() - started) if index else 0.0
    return seconds / (len(batches) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4, help="timed steps per defense (plus one warm-up)")
    parser.add_argument("--steps", type=int, help="inner steps for the eps-8 defenses")
    parser.add_argument("--step-size", type=float, help="inner step size (pixels) for the eps-8 defenses")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    keep_freed_memory()  # as `metricattack train` does
    device = choose_device(args.device)
    data = load_data(None, None, progress=False)
    labels = torch.tensor(relabel([s.pid for s in data.train])[0])
    sampler = RandomIdentitySampler(labels.tolist(), 64, 4, seed=0)
    batches = [torch.tensor(b) for b in sampler.batches()[: args.batches + 1]]
    images = read_images(data.train)
    base, _ = load_model()
    plain = step_seconds(lambda m, x, y, c, g: standard_loss(m, x, y, c), copy.deepcopy(base).to(device), images, labels, batches, device)
    rows = [("none (usual loss)", 1, plain)]
    for name in DEFENSES:
        options = {}
        if build_defense(name).eps == 8:
            options = {k: v for k, v in (("steps", args.steps), ("step_size", args.step_size)) if v is not None}
        defense = build_defense(name, **options)
        model = defense.prepare_model(copy.deepcopy(base), from_weights=True).to(device)
        rows.append((name, defense.cost, step_seconds(defense, model, images, labels, batches, device)))
        print(f"{name}: {rows[-1][2]:.2f} s per step", flush=True)
    lines = [
        "",
        f"## Defense training cost ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `python benchmarks/bench_defense_cost.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {torch.get_num_threads()} torch threads, device {device}, torch {torch.__version__}; CPU seconds per "
        f"training step (batch 64), mean of {args.batches} steps after a warm-up. `offline` costs its copies once "
        "(not in a step) and then twice the batches per epoch.",
        "",
        "| defense | passes per image (inner steps + 1) | CPU s per step | × usual training |",
        "|---|---|---|---|",
        *(f"| {name} | {passes} | {seconds:.2f} | {seconds / plain:.1f} |" for name, passes, seconds in rows),
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
