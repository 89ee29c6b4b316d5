"""Metric losses to be maximised by an attack, one value per adversarial image.

They know nothing about step rules: given the adversarial features, reference features (the other
side's clean features) and masks saying which references are the image's own identity (and, for
targeted attacks, the target identity), they return a (B,) tensor, so an image's gradient does not
depend on which other images share its batch.
"""

from __future__ import annotations

import torch

from metricattack.evaluation.distance import pairwise_distance


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row means of ``values`` (B,R) over the True entries of ``mask``; 0 for an empty row."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


class NonTargetedMetricLoss:
    """L_i = mean_{j: own(i,j)} d(f(x_i + r_i), g_j): push each image away from its identity's references."""

    def __init__(self, metric: str = "euclidean", normalize: bool = False) -> None:
        self.metric = metric
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"NonTargetedMetricLoss(metric={self.metric!r}, normalize={self.normalize})"

    def __call__(self, adv_features: torch.Tensor, reference_features: torch.Tensor, own_mask: torch.Tensor) -> torch.Tensor:
        if not own_mask.any(dim=1).all():
            raise ValueError("every adversarial image needs at least one reference of its own identity")
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)
        return masked_mean(distances, own_mask)


class TargetedMetricLoss:
    """L_i = w * mean_{own} d(f(x_i + r_i), g_j) - mean_{target} d(f(x_i + r_i), g_j):
    pull toward the target identity's references while pushing away from one's own (w = push_weight;
    an image with no own reference only pulls)."""

    def __init__(self, metric: str = "euclidean", normalize: bool = False, push_weight: float = 1.0) -> None:
        self.metric = metric
        self.normalize = normalize
        self.push_weight = push_weight

    def __repr__(self) -> str:
        return f"TargetedMetricLoss(metric={self.metric!r}, normalize={self.normalize}, push_weight={self.push_weight})"

    def __call__(
        self, adv_features: torch.Tensor, reference_features: torch.Tensor, own_mask: torch.Tensor, target_mask: torch.Tensor
    ) -> torch.Tensor:
        if not target_mask.any(dim=1).all():
            raise ValueError("every adversarial image needs at least one reference of its target identity")
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)
        return self.push_weight * masked_mean(distances, own_mask) - masked_mean(distances, target_mask)
