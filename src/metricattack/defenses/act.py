"""ACT, anti-collapse triplet (Zhou et al., "Adversarial Attack and Defense in Deep Ranking", arXiv 2106.03614; RobRank).

For random triplets (a, p, n) of the batch, the inner attack moves the positive and the negative toward
each other, p̃, ñ = argmin d(f̂(p̃), f̂(ñ)) within the eps-ball of each, the anchor staying clean; the
training loss is L_T(a, p̃, ñ; γ) with γ = 0.2, so the model learns to keep them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.defenses.base import Defense, embedding_distance, random_triplets, triplet_margin
from metricattack.models.reid import ReIDModel
from metricattack.training.losses import ReIDLoss


@dataclass(frozen=True)
class ACT(Defense):
    """Collapse positives onto negatives in the inner attack; a triplet loss with margin γ against it."""

    name = "act"
    margin: float = 0.2

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L_T(a, p̃, ñ; γ), averaged over the batch's anchors."""
        positives, negatives = random_triplets(labels, generator)
        count = len(inputs)

        def collapse(images: torch.Tensor) -> torch.Tensor:  # (2B,): positives then negatives
            features = model(images)
            closeness = -embedding_distance(features[:count], features[count:])
            return torch.cat([closeness, closeness])

        pairs = self.perturb(model, torch.cat([inputs[positives], inputs[negatives]]), collapse, generator)
        _, features = model(torch.cat([inputs, pairs]))  # (3B,D): anchors, p̃, ñ
        anchor, positive, negative = features.split(count)
        loss = triplet_margin(anchor, positive, negative, self.margin).mean()
        return self.with_clean_loss(loss, {"act": float(loss.detach())}, model, inputs, labels, criterion)
