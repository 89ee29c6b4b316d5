"""Time our I-FGSM gallery attack against the bare forward+backward passes, and against the paper's loop.

    python benchmarks/bench_attack.py [--eps 5] [--repeats 3] [--batch-size 64] [--threads 1]

Uses the bundled default model on the default synthetic data, on one torch thread (``--threads``).

1. Overhead: the bare cost runs, on exactly the batches the attack uses, ``steps`` times: a forward pass
   and a gradient with respect to the input of the summed features; our attack (the paper's schedule)
   adds the metric loss, the step and the projection. Ratio ours / bare, best of --repeats.
2. Against the paper: Gen_Adv.py's I-FGSM, written here from its algorithm (one query identity at a
   time: its gallery images against its L2-normalised query features, loss = sum of MSE over pairs,
   int(min(eps + 4, 1.25 eps)) steps of 1/255), then our ``--schedule fast``, in the same process:
   mAP after 8-bit rounding, gradient evaluations (images x forward+backward passes), forward-only
   passes, wall time, and the ratios ours / paper.

Both sections are appended to benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from results_file import append_section

from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.options import Reading
from metricattack.experiment.registry import run_attack
from metricattack.models.deployment import Deployment
from metricattack.data.images import quantize
from metricattack.attacks.steps import default_iterations
from metricattack.experiment.inputs import load_data
from metricattack.models import load_model
from metricattack.system.runtime import choose_device


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


def paper_loop(campaign: Campaign, eps_pixels: float) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Gen_Adv.py's I-FGSM per query identity: (gallery indices, adversarial images, gradient evaluations, seconds)."""
    model = campaign.sources[0].model
    steps = default_iterations(eps_pixels)
    started = time.perf_counter()
    indices, adversarial, evaluations = [], [], 0
    for pid in sorted(set(campaign.query.pids.tolist())):
        rows = (campaign.gallery.pids == pid).nonzero().flatten()
        if pid <= 0 or not len(rows):
            continue
        gallery = campaign.gallery.images[rows].to(campaign.device).float().div(255)
        with torch.no_grad():
            query = torch.nn.functional.normalize(model(campaign.query.images[campaign.query.pids == pid].to(campaign.device).float().div(255)))
        lower, upper = (gallery - eps_pixels / 255).clamp(min=0), (gallery + eps_pixels / 255).clamp(max=1)
        x_adv = gallery.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            features = torch.nn.functional.normalize(model(x_adv))
            loss = sum(torch.nn.functional.mse_loss(q, f) for q in query for f in features)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + grad.sign() / 255, lower), upper)
            evaluations += len(rows)
        indices.append(rows)
        adversarial.append(quantize(x_adv).cpu())
    return torch.cat(indices), torch.cat(adversarial), evaluations, time.perf_counter() - started


def attacked_map(campaign: Campaign, named: NamedModel, indices: torch.Tensor, images: torch.Tensor) -> float:
    """mAP with the given gallery rows replaced by the given images."""
    query_features, gallery_features = campaign.clean_features(named)
    gallery_features = gallery_features.clone()
    gallery_features[indices.to(campaign.device)] = campaign.features(named.model, images)
    return campaign.evaluate(named, query_features, gallery_features)[0].mAP


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as issue 8 compares)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    model, _ = load_model()
    named = NamedModel("default", model)
    campaign = Campaign(load_data(None, None), [named], [named], Deployment(device), Reading(args.batch_size, progress=False))
    campaign.clean_features(named)  # computed once per campaign, outside every timing
    setting = AttackSetting("ifgsm", args.eps, "gallery")
    ours, bare, steps, attacked = [], [], 0, 0
    paper_runs, fast_runs = [], []
    for _ in range(args.repeats):
        outcome = run_attack(campaign, setting, campaign.sources)
        ours.append(outcome.seconds)
        steps, attacked = outcome.num_steps, len(outcome.gallery_indices)
        bare.append(bare_passes(campaign, outcome.gallery_indices, steps))
        paper_runs.append(paper_loop(campaign, args.eps))
        fast_runs.append(run_attack(campaign, AttackSetting("ifgsm", args.eps, "gallery", schedule="fast"), campaign.sources))
    ratio = min(ours) / min(bare)
    paper_indices, paper_images, paper_evaluations, _ = paper_runs[0]
    paper_seconds = min(run[3] for run in paper_runs)
    fast = fast_runs[0]
    fast_seconds = min(run.seconds for run in fast_runs)
    paper_map = attacked_map(campaign, named, paper_indices, paper_images)
    fast_map = attacked_map(campaign, named, fast.gallery_indices, fast.gallery_images)
    command = "python benchmarks/bench_attack.py " + " ".join(sys.argv[1:])
    machine = f"Machine: {torch.get_num_threads()} torch thread(s), device {device}, torch {torch.__version__}.  "
    lines = [
        f"\n## Attack overhead ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        machine,
        f"I-FGSM eps {args.eps:g}/255, {steps} steps, {attacked} gallery images, batch {args.batch_size}.\n",
        "| ours (s) | bare forward+backward (s) | ratio |",
        "|---|---|---|",
        f"| {min(ours):.2f} | {min(bare):.2f} | {ratio:.3f} |",
        f"\n## Paper loop against `--schedule fast` ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        machine,
        f"Gallery I-FGSM eps {args.eps:g}/255, {attacked} gallery images, 8-bit rounded; seconds: best of {args.repeats}.\n",
        "| attack | mAP | gradient evaluations | forward-only passes | seconds |",
        "|---|---|---|---|---|",
        f"| paper loop (Gen_Adv.py) | {100 * paper_map:.2f} | {paper_evaluations} | 0 | {paper_seconds:.2f} |",
        f"| ours, --schedule fast | {100 * fast_map:.2f} | {fast.gradient_passes} | {fast.forward_passes} | {fast_seconds:.2f} |",
        f"| ratio ours / paper | | {fast.gradient_passes / paper_evaluations:.3f} | | {fast_seconds / paper_seconds:.3f} |",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
