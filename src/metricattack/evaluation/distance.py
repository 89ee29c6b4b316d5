"""Pairwise distances between query and gallery features (differentiable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def _distances(query_features, gallery_features, query_norms, gallery_norms, metric, normalize, out=None):
    """pairwise_distance given the rows' L2 norms; with ``out`` (Q,G), in place there (no autograd)."""
    inplace = out is not None
    if normalize or metric == "cosine":
        query_scales, gallery_scales = query_norms.clamp(min=_NORM_FLOOR), gallery_norms.clamp(min=_NORM_FLOOR)
        similarity = torch.matmul(query_features / query_scales[:, None], gallery_features.T, out=out)  # (Q,G)
        similarity = similarity.div_(gallery_scales) if inplace else similarity / gallery_scales
        if metric == "cosine":
            return similarity.neg_().add_(1) if inplace else 1 - similarity  # the same rounding either way
        query_norms, gallery_norms = query_norms / query_scales, gallery_norms / gallery_scales  # 1, or 0 if zero
        # -2 x is exact, so both forms round gallery_norms^2 - 2 x once
        if inplace:
            squared = similarity.mul_(-2).add_(gallery_norms.square())
        else:
            squared = torch.add(gallery_norms.square(), similarity, alpha=-2)
    else:
        squared = torch.addmm(gallery_norms.square()[None, :], query_features, gallery_features.T, alpha=-2, out=out)
    squared = squared.add_(query_norms.square()[:, None])  # ||q||^2 + ||g||^2 - 2 q.g
    if metric == "sqeuclidean":
        return squared.clamp_(min=0) if inplace else squared.clamp(min=0)
    return squared.clamp_(min=_SQRT_FLOOR).sqrt_() if inplace else squared.clamp(min=_SQRT_FLOOR).sqrt()


class BlockedDistances:
    """pairwise_distance rows computed in fixed blocks of ``block`` queries, zero-padded, gallery norms once.

    Matrix products of other shapes (one row, a whole chunk) round differently, so rows computed in
    chunks of varying size could break ties differently. Here a row's values depend only on the
    fixed block it belongs to, never on which rows are asked for together.
    """

    def __init__(self, query_features, gallery_features, metric: str = "euclidean", normalize: bool = False,
                 block: int = 256) -> None:  # fmt: skip
        _check(query_features, gallery_features, metric)
        self.query, self.gallery, self.metric, self.normalize, self.block = (
            query_features, gallery_features, metric, normalize, block
        )
        self.gallery_norms = torch.linalg.vector_norm(gallery_features, dim=1)  # (G,), once
        self._transposed = gallery_features.new_empty(len(gallery_features), block)  # one block, reused
        self._buffer = gallery_features.new_empty(block, len(gallery_features))
        self._cached: int | None = None  # the block in the buffer

    def _block(self, index: int) -> torch.Tensor:
        """Rows [index*block, (index+1)*block) (fewer at the end) of the distance matrix."""
        rows = self.query[index * self.block : (index + 1) * self.block]
        if self._cached != index:
            padded = rows.new_zeros(self.block, rows.shape[1])
            padded[: len(rows)] = rows
            norms = torch.linalg.vector_norm(padded, dim=1)
            # The formulas are symmetric; the (G,block) product runs about 1.4x faster on CPU than (block,G).
            _distances(self.gallery, padded, self.gallery_norms, norms, self.metric, self.normalize, self._transposed)
            self._buffer.copy_(self._transposed.T)
            self._cached = index
        return self._buffer[: len(rows)]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Distance rows start..stop-1, (stop-start, G); within one block a view valid until the next call."""
        first, last = start // self.block, (stop - 1) // self.block
        if first == last:
            return self._block(first)[start - first * self.block : stop - first * self.block]
        out = self._buffer.new_empty(stop - start, self._buffer.shape[1])
        for index in range(first, last + 1):
            low, high = max(start, index * self.block), min(stop, (index + 1) * self.block)
            out[low - start : high - start] = self._block(index)[low - index * self.block : high - index * self.block]
        return out


def paired_distance(
    first: torch.Tensor, second: torch.Tensor, metric: str = "euclidean", normalize: bool = False, floor: float = 0.0
) -> torch.Tensor:
    """Distances (N,) between row i of ``first`` (N,D) and row i of ``second`` (N,D) under ``pairwise_distance``'s
    metrics, computed from the difference so that tiny shifts do not drown in float32 cancellation; euclidean is
    sqrt(max(squared, floor)) (a floor > 0 keeps the gradient finite where two rows coincide)."""
    if metric not in DISTANCE_METRICS:
        raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")
    if normalize or metric == "cosine":
        first, second = F.normalize(first, dim=1), F.normalize(second, dim=1)
    if metric == "cosine":
        return 1 - (first * second).sum(dim=1)
    squared = (first - second).square().sum(dim=1)
    return squared if metric == "sqeuclidean" else squared.clamp(min=floor).sqrt()
