"""Adversarial images written as PNGs in the data set's own layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from metricattack.data.writer import write_images
from metricattack.experiment.chunks import chunk_ranges
from metricattack.experiment.outcome import AttackOutcome

if TYPE_CHECKING:
    from metricattack.experiment.campaign import Campaign


def save_adversarial_images(campaign: Campaign, outcome: AttackOutcome, out_dir: str | Path) -> Path:
    """Write the attacked sides as PNGs under ``out_dir`` in the data set's own layout (paths relative to its root).

    Unattacked images of those sides are written too (losslessly), so the tree is complete; a chunk at a time.
    """
    out_dir = Path(out_dir)
    for side, attacked in ((campaign.query, outcome.query), (campaign.gallery, outcome.gallery)):
        for indices, images in attacked.chunks():
            write_images(images, [side.samples[i] for i in indices], campaign.data.root, out_dir)
        untouched = torch.ones(len(side), dtype=torch.bool)
        untouched[attacked.indices] = False
        rest = untouched.nonzero().flatten()
        for start, stop in chunk_ranges(len(rest), campaign.chunk_size):
            chunk = rest[start:stop]
            write_images(side.read(chunk).float().div(255), [side.samples[i] for i in chunk], campaign.data.root, out_dir)
    return out_dir
