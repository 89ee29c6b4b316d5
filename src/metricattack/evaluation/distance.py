"""Pairwise distances between query and gallery features (differentiable)."""

from __future__ import annotations

import torch

from metricattack.errors import InputError

DISTANCE_METRICS = ("euclidean", "sqeuclidean", "cosine")
_NORM_FLOOR = 1e-12  # as in F.normalize: a zero feature stays zero instead of dividing by 0
_SQRT_FLOOR = 1e-12  # keeps the gradient of sqrt finite where two features coincide


def pairwise_distance(
    query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str = "euclidean", normalize: bool = False
) -> torch.Tensor:
    """Distances (Q,G) between rows of ``query_features`` (Q,D) and ``gallery_features`` (G,D).

    sqeuclidean: max(||q||^2 + ||g||^2 - 2 q.g, 0); euclidean: sqrt(max(sqeuclidean, 1e-12)), so
    coinciding features are 1e-6 apart with a finite (zero) gradient; cosine: 1 - q.g / (||q|| ||g||).
    ``normalize`` L2-normalises the features first (q / max(||q||, 1e-12), like F.normalize).
    Keeps the features' dtype and device; only (Q,G)-sized temporaries, none of size (G,D).
    """
    if metric not in DISTANCE_METRICS:
        raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")
    if query_features.dim() != 2 or gallery_features.dim() != 2 or query_features.shape[1] != gallery_features.shape[1]:
        raise InputError(
            f"features must be (Q,D) and (G,D) with the same D, got {tuple(query_features.shape)} "
            f"and {tuple(gallery_features.shape)}"
        )
    # Only (Q,)- and (G,)-sized norms and at most two (Q,G) buffers at a time: no (G,D) copy per call.
    query_norms = torch.linalg.vector_norm(query_features, dim=1)  # (Q,)
    gallery_norms = torch.linalg.vector_norm(gallery_features, dim=1)  # (G,)
    if normalize or metric == "cosine":
        query_scales, gallery_scales = query_norms.clamp(min=_NORM_FLOOR), gallery_norms.clamp(min=_NORM_FLOOR)
        similarity = (query_features / query_scales[:, None]) @ gallery_features.T / gallery_scales  # (Q,G)
        if metric == "cosine":
            return 1 - similarity
        query_norms, gallery_norms = query_norms / query_scales, gallery_norms / gallery_scales  # 1, or 0 if zero
        squared = torch.add(gallery_norms.square(), similarity, alpha=-2)  # (Q,G)
    else:
        squared = torch.addmm(gallery_norms.square()[None, :], query_features, gallery_features.T, alpha=-2)
    squared = squared.add_(query_norms.square()[:, None])  # ||q||^2 + ||g||^2 - 2 q.g
    return squared.clamp(min=0) if metric == "sqeuclidean" else squared.clamp(min=_SQRT_FLOOR).sqrt()
