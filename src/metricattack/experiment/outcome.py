"""The adversarial images of one setting, with what making them cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from metricattack.evaluation.damage import RankingSummary
from metricattack.experiment.chunks import AttackedSide

if TYPE_CHECKING:
    from metricattack.experiment.setting import AttackSetting


@dataclass
class AttackOutcome:
    """The adversarial images of one setting (only the attacked rows of each side, stored chunk by chunk)."""

    setting: AttackSetting
    query: AttackedSide
    gallery: AttackedSide
    seconds: float  # attack time summed over chunks (and over processes under torchrun)
    num_steps: int = 1
    gradient_passes: int = 0  # images passed forward and backward through a source model
    forward_passes: int = 0  # images passed forward only (early-stopping checks, best-iterate scoring)
    stages: dict[str, dict] = field(default_factory=dict)  # an ensemble's passes and images per stage
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # attacked (query, gallery) per target
    rankings: dict[str, RankingSummary] = field(default_factory=dict)  # attacked, per target, deployed pipeline
    perceptibility: dict | None = None  # perturbation sizes of the attacked images, computed once

    @property
    def num_attacked(self) -> int:
        """Number of images the attack changed (or was allowed to change)."""
        return len(self.query) + len(self.gallery)

    # The attacked rows of each side, their target pids (-1: none) and, gathered from every chunk, their images.
    query_indices = property(lambda self: self.query.indices)
    gallery_indices = property(lambda self: self.gallery.indices)
    query_targets = property(lambda self: self.query.targets)
    gallery_targets = property(lambda self: self.gallery.targets)
    query_images = property(lambda self: self.query.images())
    gallery_images = property(lambda self: self.gallery.images())

    def discard(self) -> None:
        """Drop the stored chunks (their folder, when the setting was stored in one)."""
        for side in (self.query, self.gallery):
            side.store.discard()
