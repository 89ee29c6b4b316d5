"""Time our I-FGSM gallery attack against the bare cost of the same forward+backward passes.

    python benchmarks/bench_attack.py [--eps 5] [--repeats 3] [--batch-size 64]

Uses the bundled default model on the default synthetic data. The bare cost runs, on exactly the
batches the attack uses, ``steps`` times: a forward pass and a gradient with respect to the input
of the summed features; our attack adds the metric loss, the step and the projection. The ratio
(ours / bare, best of --repeats) is appended to benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from results_file import append_section

from metricattack.attacks.campaign import AttackSetting, Campaign, NamedModel
from metricattack.inputs import load_data
from metricattack.models import load_model
from metricattack.runtime import choose_device



def bare_passes(campaign: Campaign, indices: torch.Tensor, steps: int) -> float:
    """Seconds for ``steps`` x (forward + input gradient) over the attacked gallery batches."""
    model = campaign.sources[0].model
    started = time.perf_counter()
    for start in range(0, len(indices), campaign.batch_size):
        images = campaign.gallery.images[indices[start : start + campaign.batch_size]].to(campaign.device).float().div(255)
        for _ in range(steps):
            images.requires_grad_(True)
            (grad,) = torch.autograd.grad(model(images).sum(), images)
            images = images.detach()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = choose_device(args.device)
    model, _ = load_model()
    named = NamedModel("default", model)
    campaign = Campaign(load_data(None, None), [named], [named], device, batch_size=args.batch_size, progress=False)
    campaign.clean_features(named)  # computed once per campaign, outside both timings
    setting = AttackSetting("ifgsm", args.eps, "gallery")
    ours, bare, steps, attacked = [], [], 0, 0
    for _ in range(args.repeats):
        outcome = campaign.attack(setting)
        ours.append(outcome.seconds)
        steps, attacked = outcome.num_steps, len(outcome.gallery_indices)
        bare.append(bare_passes(campaign, outcome.gallery_indices, steps))
    ratio = min(ours) / min(bare)
    command = "python benchmarks/bench_attack.py " + " ".join(sys.argv[1:])
    lines = [
        f"\n## Attack overhead ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: {torch.get_num_threads()} torch threads, device {device}, torch {torch.__version__}.  ",
        f"I-FGSM eps {args.eps:g}/255, {steps} steps, {attacked} gallery images, batch {args.batch_size}.\n",
        "| ours (s) | bare forward+backward (s) | ratio |",
        "|---|---|---|",
        f"| {min(ours):.2f} | {min(bare):.2f} | {ratio:.3f} |",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
