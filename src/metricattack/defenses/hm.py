"""HM, hardness manipulation with intra-class structure (Zhou et al., "Enhancing Adversarial Robustness for
Deep Metric Learning", CVPR 2022; RobRank's "hm").

For random triplets (a, p, n), with hardness H(a,p,n) = d(a,p) - d(a,n), the inner attack perturbs all
three images so that H(ã,p̃,ñ) moves toward a destination hardness H*: it maximises -(H(ã,p̃,ñ) - H*)².
Our H* is the anchor's batch-hard hardness on the clean embeddings, max_p d(a,p) - min_n d(a,n), so a random
triplet is made as hard as the hardest one in the batch. Training loss:

L = L_T(ã, p̃, ñ; γ) + w · L_T(a, ã, p; 0),   γ = 0.2, w = 0.5 (the intra-class structure term keeps the
adversarial anchor closer to its clean self than the positive is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.defenses.base import Defense, embedding_distance, random_triplets, triplet_margin
from metricattack.evaluation.distance import pairwise_distance
from metricattack.models.reid import ReIDModel
from metricattack.training.losses import ReIDLoss


def batch_hard_hardness(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max_p d(a,p) - min_n d(a,n) per anchor (B,), on L2-normalised embeddings (B,D)."""
    distances = pairwise_distance(features, features, "euclidean", normalize=True)  # (B,B)
    same = labels[:, None] == labels[None, :]
    return distances.masked_fill(~same, float("-inf")).amax(dim=1) - distances.masked_fill(same, float("inf")).amin(dim=1)


@dataclass(frozen=True)
class HM(Defense):
    """Raise random triplets' hardness toward the batch-hard one; triplet loss plus the ICS term."""

    name = "hm"
    margin: float = 0.2
    ics_weight: float = 0.5

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L_T(ã,p̃,ñ;γ) + w · L_T(a,ã,p;0), averaged over the batch's anchors."""
        positives, negatives = random_triplets(labels, generator)
        count = len(inputs)
        destination = batch_hard_hardness(self.clean_features(model, inputs), labels)  # (B,)

        def toward_destination(images: torch.Tensor) -> torch.Tensor:  # (3B,): anchors, positives, negatives
            anchor, positive, negative = model(images).split(count)
            hardness = embedding_distance(anchor, positive) - embedding_distance(anchor, negative)
            closeness = -(hardness - destination).square()
            return closeness.repeat(3)

        triplets = torch.cat([inputs, inputs[positives], inputs[negatives]])
        adversarial = self.perturb(model, triplets, toward_destination, generator)
        _, features = model(torch.cat([inputs, inputs[positives], adversarial]))  # (5B,D)
        anchor, positive, adv_anchor, adv_positive, adv_negative = features.split(count)
        triplet = triplet_margin(adv_anchor, adv_positive, adv_negative, self.margin).mean()
        structure = triplet_margin(anchor, adv_anchor, positive, 0.0).mean()
        loss = triplet + self.ics_weight * structure
        parts = {"hm": float(triplet.detach()), "ics": float(structure.detach())}
        return self.with_clean_loss(loss, parts, model, inputs, labels, criterion)
