"""Time forward + input gradient of the bundled default model under --amp and channels-last, on this machine.

    python benchmarks/bench_precision.py [--images 256] [--batch-size 64] [--repeats 3] [--threads 1] [--device auto]

For each setting (float32, bf16, fp16, channels-last, bf16 + channels-last): seconds for one forward pass and
one gradient with respect to the input of the summed features over the first --images gallery images of the
default data (best of --repeats, after one warm-up batch), the ratio to float32, and how far the features
of those images are from float32 (worst row cosine, worst relative L2 error). Then the clean mAP of the
whole default query/gallery split with features extracted under each setting. Appended to
benchmarks/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from results_file import append_section

from metricattack.evaluation import evaluate_features
from metricattack.models.features import extract_features
from metricattack.data.images import read_images
from metricattack.experiment.inputs import load_data
from metricattack.models import load_model
from metricattack.models.precision import with_precision
from metricattack.system.runtime import choose_device

SETTINGS = {  # label -> (amp, channels_last)
    "float32": ("off", False),
    "bf16": ("bf16", False),
    "fp16": ("fp16", False),
    "channels-last": ("off", True),
    "bf16 + channels-last": ("bf16", True),
}


def forward_backward(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> float:
    """Seconds for a forward pass and an input gradient of the summed features, batch by batch."""
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].clone().requires_grad_(True)
        torch.autograd.grad(model(batch).sum(), batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    model, _ = load_model()
    model.to(device)
    data = load_data(None, None, progress=False)
    images = read_images(data.gallery[: args.images]).to(device).float() / 255
    spec = model.spec
    with torch.no_grad():
        reference = model(images)
    load = [os.getloadavg()[0]]
    rows = []
    for label, (amp, channels_last) in SETTINGS.items():
        wrapped = with_precision(model, amp, channels_last)
        forward_backward(wrapped, images[: args.batch_size], args.batch_size)  # warm-up
        seconds = min(forward_backward(wrapped, images, args.batch_size) for _ in range(args.repeats))
        with torch.no_grad():
            features = wrapped(images)
        cosine = F.cosine_similarity(features, reference).min().item()
        relative = ((features - reference).norm(dim=1) / reference.norm(dim=1)).max().item()
        query, gallery = (extract_features(wrapped, s, device, args.batch_size, progress=False) for s in (data.query, data.gallery))
        metrics = evaluate_features(
            query.features, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids,
            metric=spec.metric, normalize=spec.normalize,
        )  # fmt: skip
        rows.append((label, seconds, cosine, relative, metrics.mAP))
        load.append(os.getloadavg()[0])
    with_precision(model)  # weights back in their own layout
    base = rows[0][1]
    command = "python benchmarks/bench_precision.py " + " ".join(sys.argv[1:])
    lines = [
        f"\n## Mixed precision and channels-last ({time.strftime('%Y-%m-%d %H:%M')} UTC)\n",
        f"Command: `{command.strip()}`  ",
        f"Machine: {torch.get_num_threads()} torch thread(s), device {device}, torch {torch.__version__}, "
        f"1-minute load average {' -> '.join(f'{v:.1f}' for v in load)} (start, after each setting).  ",
        f"Bundled default model ({spec.arch}, input {spec.input_size[0]}x{spec.input_size[1]}), forward + input gradient of "
        f"the first {len(images)} default gallery images, batch {args.batch_size}, best of {args.repeats}; feature error "
        f"on those images against float32; clean mAP of the whole default split ({len(data.query)} queries, "
        f"{len(data.gallery)} gallery images) with features extracted under the setting.\n",
        "| setting | forward+backward (s) | ratio to float32 | worst cosine | worst relative L2 | clean mAP |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {s:.2f} | {s / base:.2f} | {c:.6f} | {r:.4f} | {100 * m:.2f} |" for label, s, c, r, m in rows]
    append_section(lines)


if __name__ == "__main__":
    main()
