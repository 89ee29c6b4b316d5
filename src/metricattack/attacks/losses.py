"""Metric losses to be maximised by an attack, one value per adversarial image.

They know nothing about step rules: given the adversarial features (B,D), the fixed reference
features (R,D) (the other side's clean features) and boolean masks (B,R) saying which references are
the image's own identity (and, for a targeted attack, the target identity), they return a (B,) tensor.
Each value depends on its own image only, so an image's gradient does not depend on its batch.

The paper's gallery attack (Bai et al., ``Gen_Adv.py``) maximises, for each gallery image g of an
identity, sum_q MSE(f(q), f(g)) over that identity's query images q, on L2-normalised features:
``NonTargetedMetricLoss("sqeuclidean", normalize=True)`` up to a positive per-image factor, which
sign steps and MI-FGSM's mean-|grad| normalisation ignore. It is the default non-targeted objective.
"""

from __future__ import annotations

import torch

from metricattack.errors import InputError
from metricattack.evaluation.distance import DISTANCE_METRICS, pairwise_distance


def check_metric(metric: str) -> None:
    """InputError unless ``metric`` is a distance we know."""
    if metric not in DISTANCE_METRICS:
        raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")


def check_mask(mask: torch.Tensor, adv_features: torch.Tensor, reference_features: torch.Tensor, name: str) -> None:
    """ValueError unless ``mask`` is a bool (B,R) mask for B adversarial and R reference features."""
    expected = (adv_features.shape[0], reference_features.shape[0])
    if mask.dtype != torch.bool or tuple(mask.shape) != expected:
        raise ValueError(f"{name} must be a bool tensor of shape {expected}, got {mask.dtype} {tuple(mask.shape)}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row means (B,) of ``values`` (B,R) over the True entries of ``mask``; 0 for an empty row."""
    weights = mask.to(values.dtype)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def _masked_min(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row minima (B,) of ``values`` (B,R) over the True entries of ``mask``; 0 for an empty row."""
    minima = values.masked_fill(~mask, float("inf")).min(dim=1).values
    return torch.where(mask.any(dim=1), minima, torch.zeros_like(minima))


PULLS = {"mean": masked_mean, "nearest": _masked_min}


class NonTargetedMetricLoss:
    """Push each adversarial image away from the references of its own identity.

    L_i = 1/|O_i| * sum_{j in O_i} d(f(x_i + r_i), g_j),   O_i = {j : own_mask[i, j]},

    with d = ``pairwise_distance(metric, normalize)``, the distance used for evaluation.
    Every row of ``own_mask`` needs at least one True entry.
    """

    def __init__(self, metric: str = "sqeuclidean", normalize: bool = False) -> None:
        check_metric(metric)
        self.metric = metric
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"NonTargetedMetricLoss(metric={self.metric!r}, normalize={self.normalize})"

    def __call__(
        self,
        adv_features: torch.Tensor,  # (B,D)
        reference_features: torch.Tensor,  # (R,D)
        own_mask: torch.Tensor,  # (B,R) bool
    ) -> torch.Tensor:
        """Per-image losses (B,) to maximise."""
        check_mask(own_mask, adv_features, reference_features, "own_mask")
        if not own_mask.any(dim=1).all():
            raise ValueError("every adversarial image needs at least one reference of its own identity")
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)  # (B,R)
        return masked_mean(distances, own_mask)


class TargetedMetricLoss:
    """Pull each adversarial image toward a target identity's references, pushing it from its own.

    L_i = w * 1/|O_i| * sum_{j in O_i} d(f(x_i + r_i), g_j) - P_i,

    with O_i, T_i the True entries of row i of ``own_mask`` / ``target_mask``, w = ``push_weight`` and the
    pull P_i = 1/|T_i| * sum_{j in T_i} d(f(x_i + r_i), g_j) (``pull="mean"``) or min_{j in T_i} d(...)
    (``pull="nearest"``: only the nearest target reference, the one that decides rank-1 success).
    ``push="nearest"`` likewise replaces the mean over O_i by the nearest own reference: with both nearest,
    L_i = w * min_{O_i} d - min_{T_i} d, the margin a nearest-neighbour matcher (a tracker) decides by.
    An image with no own reference (empty O_i) only pulls; every row needs a target reference.
    """

    def __init__(
        self, metric: str = "euclidean", normalize: bool = False, push_weight: float = 1.0, pull: str = "mean",
        push: str = "mean",
    ) -> None:
        check_metric(metric)
        if push_weight < 0:
            raise InputError(f"push_weight must be >= 0, got {push_weight:g}")
        for name, value in (("pull", pull), ("push", push)):
            if value not in PULLS:
                raise InputError(f"unknown {name} {value!r} (expected one of {', '.join(PULLS)})")
        self.metric = metric
        self.normalize = normalize
        self.push_weight = push_weight
        self.pull = pull
        self.push = push

    def __repr__(self) -> str:
        return (
            f"TargetedMetricLoss(metric={self.metric!r}, normalize={self.normalize}, "
            f"push_weight={self.push_weight}, pull={self.pull!r}, push={self.push!r})"
        )

    def __call__(
        self,
        adv_features: torch.Tensor,  # (B,D)
        reference_features: torch.Tensor,  # (R,D)
        own_mask: torch.Tensor,  # (B,R) bool
        target_mask: torch.Tensor,  # (B,R) bool
    ) -> torch.Tensor:
        """Per-image losses (B,) to maximise."""
        check_mask(own_mask, adv_features, reference_features, "own_mask")
        check_mask(target_mask, adv_features, reference_features, "target_mask")
        if not target_mask.any(dim=1).all():
            raise ValueError("every adversarial image needs at least one reference of its target identity")
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)  # (B,R)
        pull = PULLS[self.pull](distances, target_mask)
        if self.push_weight == 0:  # no 0 * distance term: its gradient would be computed for nothing
            return -pull
        return self.push_weight * PULLS[self.push](distances, own_mask) - pull
