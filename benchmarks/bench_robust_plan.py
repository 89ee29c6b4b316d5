"""How long `metricattack run --plan robust-pgd` takes on the default data: passes counted, cost per pass measured.

    python benchmarks/bench_robust_plan.py [--batches 4] [--subset N]

Counts, for every job of the PGD plan (the robust plan before `auto`; `auto`'s passes depend on how soon each
image reaches its goal, so it is measured by running it) and its sanity checks, the images it attacks on the
default synthetic data and the forward+input-gradient and forward-only passes it makes (steps x
restarts gradient passes and one best-iterate forward per restart for PGD, one evaluation forward
per attacked image, the clean features of the model and of the transfer source). Then measures,
on the bundled model, the wall and process CPU seconds of one image's pass (batches of 64, the
attack's metric objective) and multiplies. Process CPU time is what a machine shared with other
jobs still measures faithfully; on an idle machine the wall time is the CPU time over the threads'
speed-up. Appends the figures and this command to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from results_file import append_section

from metricattack.experiment.campaign import Campaign
from metricattack.experiment.options import Reading
from metricattack.models.deployment import Deployment
from metricattack.experiment.setting import NamedModel
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.data.subset import subset_query_identities
from metricattack.experiment.inputs import load_data
from metricattack.models import load_model
from metricattack.experiment.plans import ROBUST_PGD_PLAN, Job
from metricattack.experiment.sanity import GRADIENT_IMAGES, LARGE_EPS


def attacked_counts(campaign: Campaign) -> dict[str, int]:
    """Images each side attacks: those whose identity has images on the other side."""
    query, gallery = campaign.query, campaign.gallery
    gallery_count = int((torch.isin(gallery.pids, query.pids) & (gallery.pids > 0)).sum())
    query_count = int((torch.isin(query.pids, gallery.pids) & (query.pids > 0)).sum())
    return {"gallery": gallery_count, "query": query_count, "both": gallery_count + query_count}


def plan_passes(campaign: Campaign) -> tuple[int, int]:
    """(gradient passes, forward passes) of every image the PGD plan and its sanity checks process."""
    counts = attacked_counts(campaign)
    grads = forwards = 0
    jobs = [item if isinstance(item, Job) else Job(item) for item in ROBUST_PGD_PLAN.settings]
    for job in jobs:
        rule = job.setting.step_rule()
        images = counts[job.setting.side]
        grads += images * rule.steps * rule.restarts
        forwards += images * ((rule.restarts if rule.keep_best else 0) + 1)  # best-iterate forwards, evaluation
    images = len(campaign.query.pids) + len(campaign.gallery.pids)
    forwards += 2 * images  # clean features of the model under test and of the transfer source
    grads += counts["gallery"] * LARGE_EPS.step_rule().steps + counts["both"] * 2 + GRADIENT_IMAGES  # sanity attacks
    forwards += counts["gallery"] + 2 * counts["both"]
    return grads, forwards


def seconds_per_image(campaign: Campaign, named: NamedModel, batches: int, gradient: bool) -> tuple[float, float]:
    """(wall, process CPU) seconds per image of one pass of the metric objective, over ``batches`` batches of 64."""
    references = campaign.clean_features(named)[0]
    loss = NonTargetedMetricLoss(named.model.spec.metric, named.model.spec.normalize)
    wall, cpu = time.perf_counter(), time.process_time()
    images_done = 0
    for number in range(batches):
        batch = campaign.gallery.images[number * 64 : (number + 1) * 64].float().div(255).to(campaign.device)
        own = torch.ones(len(batch), len(references), dtype=torch.bool, device=campaign.device)
        with torch.enable_grad() if gradient else torch.no_grad():
            batch.requires_grad_(gradient)
            values = loss(named.model(batch), references, own)
            if gradient:
                torch.autograd.grad(values.sum(), batch)
        images_done += len(batch)
    return (time.perf_counter() - wall) / images_done, (time.process_time() - cpu) / images_done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--subset", type=int, help="count the passes of --subset N instead of the full plan")
    args = parser.parse_args()
    model, _ = load_model()
    named = NamedModel("default", model)
    data = load_data(None, None, progress=False)
    if args.subset:
        data = subset_query_identities(data, args.subset, 0)
    campaign = Campaign(data, [named], [named], Deployment(torch.device("cpu")), Reading(progress=False))
    grads, forwards = plan_passes(campaign)
    grad_wall, grad_cpu = seconds_per_image(campaign, named, args.batches, gradient=True)
    forward_wall, forward_cpu = seconds_per_image(campaign, named, args.batches, gradient=False)
    cpu_total = grads * grad_cpu + forwards * forward_cpu
    wall_total = grads * grad_wall + forwards * forward_wall
    counts = attacked_counts(campaign)
    command = "python benchmarks/bench_robust_plan.py " + " ".join(sys.argv[1:])
    lines = [
        f"\n## Robust plan duration ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: {torch.get_num_threads()} torch threads, CPU, torch {torch.__version__}, 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end.  ",
        f"Data: {data.name}; attacked images: {counts['gallery']} gallery, {counts['query']} query. Bundled model, "
        "transfer source the same architecture (so its passes cost the same).\n",
        "| passes (forward + input gradient) | forward-only passes | s per gradient pass (wall / CPU) | estimate, wall (min) | estimate, process CPU (min) |",
        "|---|---|---|---|---|",
        f"| {grads:,} | {forwards:,} | {1000 * grad_wall:.2f} ms / {1000 * grad_cpu:.2f} ms | {wall_total / 60:.0f} | {cpu_total / 60:.0f} |",
    ]
    append_section(lines)


if __name__ == "__main__":
    main()
