"""Pairwise distances between query and gallery features (differentiable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metricattack.errors import InputError

DISTANCE_METRICS = ("euclidean", "sqeuclidean", "cosine")
_SQRT_FLOOR = 1e-12  # keeps the gradient of sqrt finite where two features coincide


def pairwise_distance(
    query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str = "euclidean", normalize: bool = False
) -> torch.Tensor:
    """Distances (Q,G) between rows of ``query_features`` (Q,D) and ``gallery_features`` (G,D).

    sqeuclidean: ||q||^2 + ||g||^2 - 2 q.g (clamped at 0); euclidean: its square root;
    cosine: 1 - q.g / (||q|| ||g||). ``normalize`` L2-normalises the features first.
    """
    if metric not in DISTANCE_METRICS:
        raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")
    if normalize or metric == "cosine":
        query_features = F.normalize(query_features, dim=1)
        gallery_features = F.normalize(gallery_features, dim=1)
    products = query_features @ gallery_features.T
    if metric == "cosine":
        return 1 - products
    squared = (
        query_features.pow(2).sum(dim=1, keepdim=True) + gallery_features.pow(2).sum(dim=1)[None, :] - 2 * products
    ).clamp(min=0)
    return squared if metric == "sqeuclidean" else squared.clamp(min=_SQRT_FLOOR).sqrt()
