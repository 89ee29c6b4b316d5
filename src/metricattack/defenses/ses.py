"""SES, suppressing embedding shift (Zhou et al., ECCV 2020 supplement, arXiv 2106.03614; RobRank): clean loss plus the shift.

L = L(clean) + β · mean_i d(f̂(x_i + δ*_i), f̂(x_i)),   δ* = argmax_{‖δ‖∞ ≤ ε} d(f̂(x+δ), f̂(x)),

with β = 1; the penalty's embeddings are the train-mode ones the triplet loss sees (pre-BNNeck),
from one forward pass over the clean and shifted batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.defenses.base import embedding_distance
from metricattack.defenses.est import EST
from metricattack.models.reid import ReIDModel
from metricattack.training.losses import ReIDLoss


@dataclass(frozen=True)
class SES(EST):
    """Penalise the embedding shift the inner attack finds; clean_weight is the weight of L(clean)."""

    name = "ses"
    clean_weight: float = 1.0
    beta: float = 1.0

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """clean_weight · L(clean) + β · mean shift."""
        adversarial, _ = self.shifted(model, inputs, generator)
        logits, features = model(torch.cat([inputs, adversarial]))
        count = len(inputs)
        clean, parts = criterion(logits[:count], features[:count], labels)
        shift = embedding_distance(features[count:], features[:count]).mean()
        return self.clean_weight * clean + self.beta * shift, {**parts, "shift": float(shift.detach())}
