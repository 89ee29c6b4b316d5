"""CMC, mAP and mINP under the Market-1501 protocol, vectorised and chunked over queries.

For each query the gallery is sorted by distance (stable: ties keep gallery order); gallery items
with the query's pid *and* camera, and junk items (pid -1), are removed; queries left without any
true match are skipped and counted. This is torchreid's ``evaluate_rank`` (``eval_market1501``)
plus the junk removal of the Market-1501 evaluation code.

Ranks below are 1-based positions in a query's list of *valid* gallery items (the removed ones do
not count). For a query with M true matches at ranks r_1 < ... < r_M:

- standard AP (torchreid, non-interpolated):  AP = (1/M) sum_i i / r_i
- trapezoid AP (Market-1501 ``compute_mAP``, the paper's code):
  AP = (1/M) sum_i (P_before(i) + i / r_i) / 2,  P_before(i) = (i-1) / (r_i - 1), or 1 if r_i = 1
- INP (torchreid): M / r_M, the precision at the hardest true match; mINP is its mean
- CMC rank-k: 1 if r_1 <= k, else 0

mAP, mINP and CMC are means over the evaluated (not skipped) queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from metricattack.errors import InputError
from metricattack.evaluation.distance import BlockedDistances
from metricattack.evaluation.match_ranks import MatchRanker, identity_pairs, positions_in_rows, sort_within_rows

AP_MODES = ("standard", "trapezoid")
_CHUNK_BYTES = 128 * 2**20
# Working bytes per (query, gallery) pair of a chunk, an upper bound: MatchRanker's float and int32
# buckets and a bool (9), its histograms (one bucket per 4 items: int32, int64 and their sums, ~6),
# top_k_valid's masked copy and mask (5 for float32), with room for float64 distances.
_BYTES_PER_PAIR = 32
ROW_BLOCK = 256  # queries per matrix product in evaluate_features (fewer if Q is smaller): fixed, not the chunk


@dataclass
class RetrievalMetrics:
    """Retrieval quality, as fractions in [0,1]; ``cmc[k-1]`` is the rank-k accuracy."""

    mAP: float
    mINP: float
    cmc: list[float]
    num_queries: int  # evaluated queries
    num_skipped: int  # queries without any valid true match

    def rank(self, k: int) -> float:
        """Rank-k accuracy, for 1 <= k <= max_rank (the CMC length)."""
        if not 1 <= k <= len(self.cmc):
            raise InputError(f"rank-{k} is not known: the CMC covers ranks 1 to {len(self.cmc)} (max_rank)")
        return self.cmc[k - 1]

    def as_dict(self) -> dict:
        """mAP, mINP, rank1/rank5/rank10 (None beyond max_rank) and the query counts."""
        return {
            "mAP": self.mAP,
            "mINP": self.mINP,
            **{f"rank{k}": self.cmc[k - 1] if k <= len(self.cmc) else None for k in (1, 5, 10)},
            "num_queries": self.num_queries,
            "num_skipped": self.num_skipped,
        }


def _valid(query_pid, gallery_pid, query_camid, gallery_camid) -> torch.Tensor:
    """Elementwise on broadcastable labels: the pair counts (not junk, not same pid in the same camera).

    The protocol's rules; ``identity_pairs`` applies the same ones to the same-identity pairs only.
    """
    return ~((query_pid == gallery_pid) & (query_camid == gallery_camid)) & (gallery_pid != -1)


def valid_mask(query_pids, gallery_pids, query_camids, gallery_camids) -> torch.Tensor:
    """(Q,G) True where a gallery item counts for a query: not junk, and not same pid in the same camera."""
    return _valid(query_pids[:, None], gallery_pids[None, :], query_camids[:, None], gallery_camids[None, :])


def _query_sums(ranks, rows, num_rows, average_precision):
    """Per query (row): (AP, INP, first-hit rank, M) from its matches' valid ranks; rows without a match get M = 0."""
    num_matches, position = positions_in_rows(rows, num_rows)  # (q,) M per query; (H,) i - 1
    hit_rank = ranks.double()  # (H,) r_i, increasing within a row
    hit_number = (position + 1).double()  # (H,) i
    precision = hit_number / hit_rank
    if average_precision == "standard":
        per_hit = precision
    else:
        before = torch.where(hit_rank > 1, (hit_number - 1) / (hit_rank - 1).clamp(min=1), 1.0)
        per_hit = (before + precision) / 2
    ap = torch.zeros(num_rows, dtype=torch.float64, device=rows.device)
    ap.index_add_(0, rows, per_hit / num_matches[rows])  # (1/M) sum_i per_hit
    first_rank = torch.zeros(num_rows, dtype=torch.long, device=rows.device)
    last_rank = torch.ones(num_rows, dtype=torch.float64, device=rows.device)
    is_first, is_last = position == 0, position == num_matches[rows] - 1
    first_rank[rows[is_first]] = ranks[is_first]  # r_1
    last_rank[rows[is_last]] = hit_rank[is_last]  # r_M
    return ap, num_matches / last_rank, first_rank, num_matches


def _labels(name: str, labels, expected: int, device: torch.device) -> torch.Tensor:
    """``labels`` as a 1-D tensor of length ``expected`` on ``device``."""
    labels = torch.as_tensor(labels, device=device)
    if labels.dim() != 1 or len(labels) != expected:
        raise InputError(f"{name} has shape {tuple(labels.shape)}, expected ({expected},)")
    return labels


def _all_labels(labels: tuple, num_queries: int, num_gallery: int, device: torch.device) -> tuple:
    """(query_pids, gallery_pids, query_camids, gallery_camids) checked against the matrix's shape, on ``device``."""
    names = ("query_pids", "gallery_pids", "query_camids", "gallery_camids")
    sizes = (num_queries, num_gallery, num_queries, num_gallery)
    return tuple(_labels(name, values, size, device) for name, values, size in zip(names, labels, sizes))


def _auto_chunk_size(chunk_size: int | None, num_gallery: int) -> int:
    """The number of query rows per chunk: ``chunk_size``, or as many as fit in about 128 MB."""
    if chunk_size is None:
        return max(1, _CHUNK_BYTES // (max(num_gallery, 1) * _BYTES_PER_PAIR))
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}")
    return chunk_size


def _evaluate_chunks(
    distance_rows: Callable[[int, int], torch.Tensor],
    num_queries: int,
    num_gallery: int,
    device: torch.device,
    labels: tuple,
    max_rank: int,
    average_precision: str,
    chunk_size: int | None,
) -> RetrievalMetrics:
    """Shared by evaluate_ranking and evaluate_features: ``distance_rows(start, stop)`` gives (stop-start, G)."""
    if average_precision not in AP_MODES:
        raise InputError(f"unknown average precision {average_precision!r} (expected one of {', '.join(AP_MODES)})")
    if max_rank < 1:
        raise InputError(f"max_rank must be at least 1, got {max_rank}")
    if num_queries == 0 or num_gallery == 0:
        raise InputError(f"cannot evaluate: {num_queries} queries and {num_gallery} gallery images (expected both > 0)")
    match_ranks = MatchRanker(identity_pairs(*_all_labels(labels, num_queries, num_gallery, device)))
    chunk_size = _auto_chunk_size(chunk_size, num_gallery)
    # Per-query values, summed once at the end: the metrics do not depend on the chunking.
    per_query = [], [], [], []  # AP, INP, first-hit rank, number of matches
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        rows, ranks = match_ranks(distance_rows(start, stop), start)
        for values, chunk in zip(per_query, _query_sums(ranks, rows, stop - start, average_precision)):
            values.append(chunk)
    ap, inp, first_rank, num_matches = (torch.cat(values) for values in per_query)
    evaluated = num_matches > 0
    num_evaluated = int(evaluated.sum())
    if num_evaluated == 0:
        raise InputError(
            f"cannot evaluate: none of the {num_queries} queries has a match in the gallery "
            "(same identity, other camera, not junk)"
        )
    # CMC counts: queries whose first hit is at rank <= k, for k = 1..max_rank.
    hits = torch.bincount(first_rank[evaluated].clamp(max=max_rank + 1) - 1, minlength=max_rank + 1)
    return RetrievalMetrics(
        mAP=float(ap[evaluated].sum()) / num_evaluated,
        mINP=float(inp[evaluated].sum()) / num_evaluated,
        cmc=(hits[:max_rank].cumsum(0).double() / num_evaluated).tolist(),
        num_queries=num_evaluated,
        num_skipped=num_queries - num_evaluated,
    )


def evaluate_rows(
    distance_rows: Callable[[int, int], torch.Tensor],
    num_queries: int,
    num_gallery: int,
    labels: tuple,
    average_precision: str = "standard",
    max_rank: int = 50,
) -> RetrievalMetrics:
    """``evaluate_ranking`` of distances given as ``distance_rows(start, stop)`` (stop-start, G) (e.g. a
    ``DistanceRows``); ``labels``: query pids, gallery pids, query camids, gallery camids."""
    device = labels[0].device
    return _evaluate_chunks(distance_rows, num_queries, num_gallery, device, labels, max_rank, average_precision, None)


def evaluate_ranking(
    distmat: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    max_rank: int = 50,
    average_precision: str = "standard",
    chunk_size: int | None = None,
) -> RetrievalMetrics:
    """Market-1501 CMC, mAP and mINP of a distance matrix (Q,G), on its device, ``chunk_size`` queries at a time.

    ``average_precision``: "standard" (torchreid) AP = (1/M) sum_i i / r_i, or "trapezoid" (the
    paper's code) AP = (1/M) sum_i (P_before(i) + i / r_i) / 2 with P_before(i) = (i-1)/(r_i-1)
    (1 when r_i = 1); INP = M / r_M; r_i is the valid rank of the i-th of the M true matches.
    ``chunk_size=None`` picks a chunk of about 128 MB of working memory.
    """
    if distmat.dim() != 2:
        raise InputError(f"distmat must be a (Q,G) matrix, got shape {tuple(distmat.shape)}")
    distmat = distmat.detach()

    def distance_rows(start: int, stop: int) -> torch.Tensor:
        rows = distmat[start:stop]
        if torch.isnan(rows.amin(dim=1)).any():
            raise InputError("distmat contains NaN: a ranking needs comparable distances")
        return rows

    return _evaluate_chunks(
        distance_rows,
        distmat.shape[0], distmat.shape[1], distmat.device,
        (query_pids, gallery_pids, query_camids, gallery_camids),
        max_rank, average_precision, chunk_size,
    )  # fmt: skip


def evaluate_features(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    metric: str = "euclidean",
    normalize: bool = False,
    max_rank: int = 50,
    average_precision: str = "standard",
    chunk_size: int | None = None,
) -> RetrievalMetrics:
    """``evaluate_ranking(pairwise_distance(...))`` computing distance rows per chunk: the (Q,G) matrix never exists.

    The rows are computed in fixed blocks of min(256, Q) queries (``BlockedDistances``), so the metrics are
    the same whatever ``chunk_size`` is; they may differ from the full-matrix route's where two
    distances are equal up to float32 rounding.
    """
    if query_features.dim() != 2 or gallery_features.dim() != 2:
        raise InputError(
            f"features must be (N,D) matrices, got query {tuple(query_features.shape)} "
            f"and gallery {tuple(gallery_features.shape)}"
        )
    query_features, gallery_features = query_features.detach(), gallery_features.detach()
    if not (torch.isfinite(query_features).all() and torch.isfinite(gallery_features).all()):
        raise InputError("features contain NaN or infinite values: their distances cannot be ranked")
    block = min(ROW_BLOCK, max(len(query_features), 1))
    distances = BlockedDistances(query_features, gallery_features, metric, normalize, block)
    return _evaluate_chunks(
        distances.rows,
        query_features.shape[0], gallery_features.shape[0], query_features.device,
        (query_pids, gallery_pids, query_camids, gallery_camids),
        max_rank, average_precision, block if chunk_size is None else chunk_size,
    )  # fmt: skip


def top_k_valid(
    distmat: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """(Q,k) indices of each query's k nearest valid gallery items (same-camera matches, junk removed), -1 padded."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    distmat = distmat.detach()
    num_queries, num_gallery = distmat.shape
    device = distmat.device
    labels = _all_labels((query_pids, gallery_pids, query_camids, gallery_camids), num_queries, num_gallery, device)
    query_pids, gallery_pids, query_camids, gallery_camids = labels
    pairs = identity_pairs(*labels)
    top = torch.full((num_queries, k), -1, dtype=torch.long, device=device)
    kept = min(k, num_gallery)
    chunk_size = _auto_chunk_size(None, num_gallery)
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        rows, columns, is_match = pairs.between(start, stop)
        masked = distmat[start:stop].clone()
        masked.index_fill_(1, pairs.junk, torch.inf)
        masked[rows[~is_match], columns[~is_match]] = torch.inf
        # Every item up to the kept-th smallest masked distance, in (row, distance, gallery index) order.
        threshold = torch.topk(masked, kept, dim=1, largest=False).values.amax(dim=1)  # (q,)
        rows, columns = (masked <= threshold[:, None]).nonzero(as_tuple=True)  # by row, then gallery index
        del masked
        query = start + rows
        keep = _valid(query_pids[query], gallery_pids[columns], query_camids[query], gallery_camids[columns])
        rows, columns = rows[keep], columns[keep]
        order = sort_within_rows(rows, distmat[start + rows, columns])
        rows, columns = rows[order], columns[order]
        _, position = positions_in_rows(rows, stop - start)
        within = position < kept
        top[start + rows[within], position[within]] = columns[within]
    return top
