"""PGD-AT for re-ID: Madry et al.'s adversarial training on the softmax + triplet loss (as in re-ID robustness
work, e.g. Bouniot et al. 2020). The inner attack maximises each image's cross entropy plus its batch-hard
triplet loss on the eval-mode embeddings; the training loss is the re-ID loss on the adversarial batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from metricattack.defenses.base import Defense
from metricattack.models.reid import ReIDModel
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss, TripletLoss


@dataclass(frozen=True)
class PGDAT(Defense):
    """PGD (eps 4/255, step 2/255, 4 steps, random start) on the re-ID loss; train on the adversarial batch."""

    name = "pgd-at"
    eps: float = 4.0
    step_size: float = 2.0
    steps: int = 4

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The re-ID loss on the PGD batch."""
        triplet = TripletLoss(criterion.parts["triplet"].margin) if "triplet" in criterion.parts else None

        def objective(images: torch.Tensor) -> torch.Tensor:  # (B,)
            features = model(images)
            values = F.cross_entropy(model.classifier(features), labels, reduction="none")
            return values if triplet is None else values + triplet.per_anchor(features, labels)

        adversarial = self.perturb(model, inputs, objective, generator)
        loss, parts = standard_loss(model, adversarial, labels, criterion)
        return self.with_clean_loss(loss, parts, model, inputs, labels, criterion)
