"""EST, embedding-shifted triplet (Zhou et al., "Adversarial Ranking Attack and Defense", ECCV 2020; RobRank).

δ* = argmax_{‖δ‖∞ ≤ ε} d(f̂(x+δ), f̂(x)), then the usual re-ID loss on x + δ* (plus clean_weight
times the loss on x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.defenses.base import Defense, shift_objective
from metricattack.models.reid import ReIDModel
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss


@dataclass(frozen=True)
class EST(Defense):
    """Train on the embedding-shifted batch."""

    name = "est"

    def shifted(self, model: ReIDModel, inputs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(δ*-shifted images, the clean eval-mode embeddings they were shifted from)."""
        clean_features = self.clean_features(model, inputs)
        return self.perturb(model, inputs, shift_objective(model, clean_features), generator), clean_features

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The re-ID loss on the shifted batch."""
        adversarial, _ = self.shifted(model, inputs, generator)
        loss, parts = standard_loss(model, adversarial, labels, criterion)
        return self.with_clean_loss(loss, parts, model, inputs, labels, criterion)
