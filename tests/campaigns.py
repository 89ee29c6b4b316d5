"""Campaigns for tests: built from the options by name, and a setting run the way the sweep runs it."""

from __future__ import annotations

from pathlib import Path

import torch

from metricattack.evaluation.pipeline import PLAIN
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.options import EvaluationProtocol, Reading
from metricattack.experiment.registry import run_attack
from metricattack.experiment.scoring import evaluate_outcome, result_rows
from metricattack.models.deployment import Deployment

__all__ = ["attack", "evaluate_outcome", "make_campaign", "run"]


def make_campaign(data, sources, targets, device: torch.device | None = None, *, batch_size: int = 64, seed: int = 0,
                  quantize_images: bool = True, average_precision: str = "standard", image_size=None, workers: int = 0,
                  progress: bool = True, pipelines=(PLAIN,), chunk_size: int = 1024, amp: str = "off",
                  channels_last: bool = False) -> Campaign:  # fmt: skip
    """A campaign from its options by name; the deployment's flip averaging is the first pipeline's."""
    deployment = Deployment(device or torch.device("cpu"), amp, channels_last, list(pipelines)[0].flip)
    reading = Reading(batch_size, image_size, workers, chunk_size, progress)
    return Campaign(data, sources, targets, deployment, reading, EvaluationProtocol(pipelines, average_precision, quantize_images, seed))


def attack(campaign: Campaign, setting, sources=None, folder: Path | None = None):
    """The setting's outcome with the source models (default: the campaign's), deployed by the campaign."""
    return run_attack(campaign, setting, [campaign.deploy(named) for named in sources or campaign.sources], folder)


def run(campaign: Campaign, setting, sources=None, folder: Path | None = None):
    """(outcome, result rows) of the setting, as the sweep makes them."""
    sources = sources or campaign.sources
    outcome = attack(campaign, setting, sources, folder)
    return outcome, result_rows(campaign, outcome, sources)
