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
    _check(query_features, gallery_features, metric)
    # Only (Q,)- and (G,)-sized norms and at most two (Q,G) buffers at a time: no (G,D) copy per call.
    query_norms = torch.linalg.vector_norm(query_features, dim=1)  # (Q,)
    gallery_norms = torch.linalg.vector_norm(gallery_features, dim=1)  # (G,)
    return _distances(query_features, gallery_features, query_norms, gallery_norms, metric, normalize)


def _check(query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str) -> None:
    """InputError unless ``metric`` is known and the features are (Q,D) and (G,D)."""
    if metric not in DISTANCE_METRICS:
        raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")
    if query_features.dim() != 2 or gallery_features.dim() != 2 or query_features.shape[1] != gallery_features.shape[1]:
        raise InputError(
            f"features must be (Q,D) and (G,D) with the same D, got {tuple(query_features.shape)} "
            f"and {tuple(gallery_features.shape)}"
        )


def _distances(query_features, gallery_features, query_norms, gallery_norms, metric, normalize) -> torch.Tensor:
    """pairwise_distance given the rows' L2 norms."""
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


class BlockedDistances:
    """pairwise_distance rows computed in fixed blocks of ``block`` queries, zero-padded, gallery norms once.

    Matrix products of other shapes (one row, a whole chunk) round differently, so rows computed in
    chunks of varying size could break ties differently. Here a row's values depend only on the
    fixed block it belongs to, never on which rows are asked for together.
    """

    def __init__(self, query_features, gallery_features, metric: str = "euclidean", normalize: bool = False,
                 block: int = 64) -> None:  # fmt: skip
        _check(query_features, gallery_features, metric)
        self.query, self.gallery, self.metric, self.normalize, self.block = (
            query_features, gallery_features, metric, normalize, block
        )
        self.gallery_norms = torch.linalg.vector_norm(gallery_features, dim=1)  # (G,), once
        self._cached: tuple[int, torch.Tensor] | None = None

    def _block(self, index: int) -> torch.Tensor:
        """Rows [index*block, (index+1)*block) (fewer at the end) of the distance matrix."""
        if self._cached is None or self._cached[0] != index:
            rows = self.query[index * self.block : (index + 1) * self.block]
            padded = rows.new_zeros(self.block, rows.shape[1])
            padded[: len(rows)] = rows
            norms = torch.linalg.vector_norm(padded, dim=1)
            distances = _distances(padded, self.gallery, norms, self.gallery_norms, self.metric, self.normalize)
            self._cached = index, distances[: len(rows)]
        return self._cached[1]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Distance rows start..stop-1, (stop-start, G)."""
        first, last = start // self.block, (stop - 1) // self.block
        if first == last:
            return self._block(first)[start - first * self.block : stop - first * self.block]
        parts = [self._block(index) for index in range(first, last + 1)]
        return torch.cat(parts)[start - first * self.block : stop - first * self.block]
