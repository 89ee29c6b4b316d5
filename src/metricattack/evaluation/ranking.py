"""CMC, mAP and mINP under the Market-1501 protocol, vectorised and chunked over queries.

For each query the gallery is sorted by distance (stable: ties keep gallery order); gallery items
with the query's pid *and* camera, and junk items (pid -1), are removed; queries left without any
true match are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from metricattack.errors import InputError
from metricattack.evaluation.distance import pairwise_distance

AP_MODES = ("standard", "trapezoid")
_CHUNK_BYTES = 256 * 2**20


@dataclass
class RetrievalMetrics:
    """Retrieval quality, as fractions in [0,1]; ``cmc[k-1]`` is the rank-k accuracy."""

    mAP: float
    mINP: float
    cmc: list[float]
    num_queries: int
    num_skipped: int

    def rank(self, k: int) -> float:
        """Rank-k accuracy (the last CMC value if k exceeds it)."""
        return self.cmc[min(k, len(self.cmc)) - 1]

    def as_dict(self) -> dict:
        """mAP, mINP, rank-1/5/10 and the query counts."""
        return {
            "mAP": self.mAP,
            "mINP": self.mINP,
            "rank1": self.rank(1),
            "rank5": self.rank(5),
            "rank10": self.rank(10),
            "num_queries": self.num_queries,
            "num_skipped": self.num_skipped,
        }


def valid_mask(query_pids, gallery_pids, query_camids, gallery_camids) -> torch.Tensor:
    """(Q,G) True where a gallery item counts for a query: not junk, and not same pid in the same camera."""
    same_pid = query_pids[:, None] == gallery_pids[None, :]
    same_cam = query_camids[:, None] == gallery_camids[None, :]
    return ~(same_pid & same_cam) & (gallery_pids[None, :] != -1)


def _ranked_chunk(distances, query_pids, gallery_pids, query_camids, gallery_camids):
    """Per query, gallery order by distance and which ranked items are valid / true matches."""
    order = distances.argsort(dim=1, stable=True)  # (q,G)
    valid = valid_mask(query_pids, gallery_pids, query_camids, gallery_camids).gather(1, order)
    matches = (gallery_pids[order] == query_pids[:, None]) & valid
    return order, valid, matches


def _chunk_sums(distances, query_pids, gallery_pids, query_camids, gallery_camids, max_rank, average_precision):
    """Sums over the chunk's evaluable queries: (AP, INP, CMC (max_rank,), evaluated count, skipped count)."""
    _, valid, matches = _ranked_chunk(distances, query_pids, gallery_pids, query_camids, gallery_camids)
    # Rank among valid items only: drop the removed ones by cumulative counting.
    valid_rank = valid.cumsum(dim=1)  # 1-based rank of each valid item
    num_matches = matches.sum(dim=1)
    keep = num_matches > 0
    matches, valid_rank, num_matches = matches[keep], valid_rank[keep], num_matches[keep].to(distances.dtype)
    hits_so_far = matches.cumsum(dim=1).to(distances.dtype)  # true matches up to and including each item
    ranks = valid_rank.to(distances.dtype)
    precision = torch.where(matches, hits_so_far / ranks, torch.zeros_like(ranks))
    if average_precision == "standard":
        ap = precision.sum(dim=1) / num_matches
    else:
        # trapezoid: mean over matches of (precision before the hit + precision at the hit) / 2
        previous = torch.where(ranks > 1, (hits_so_far - 1) / (ranks - 1).clamp(min=1), torch.ones_like(ranks))
        ap = (torch.where(matches, previous, torch.zeros_like(ranks)) + precision).sum(dim=1) / (2 * num_matches)
    hardest = torch.where(matches, ranks, torch.zeros_like(ranks)).amax(dim=1)
    inp = num_matches / hardest
    first = torch.where(matches, ranks, torch.full_like(ranks, float("inf"))).amin(dim=1)  # rank of first hit
    cmc = (first[:, None] <= torch.arange(1, max_rank + 1, device=distances.device, dtype=distances.dtype)).to(distances.dtype)
    return ap.sum(), inp.sum(), cmc.sum(dim=0), int(keep.sum()), int((~keep).sum())


def _evaluate_chunks(
    distance_rows: Callable[[int, int], torch.Tensor],
    num_queries: int,
    num_gallery: int,
    query_pids, gallery_pids, query_camids, gallery_camids,
    max_rank: int, average_precision: str, chunk_size: int | None,
) -> RetrievalMetrics:  # fmt: skip
    if average_precision not in AP_MODES:
        raise InputError(f"unknown average precision {average_precision!r} (expected one of {', '.join(AP_MODES)})")
    if num_queries == 0 or num_gallery == 0:
        raise InputError(f"cannot evaluate: {num_queries} queries and {num_gallery} gallery images (expected both > 0)")
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_BYTES // (num_gallery * 8 * 6))  # about six (q,G) temporaries of 8 bytes
    totals = None
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        distances = distance_rows(start, stop)
        device = distances.device
        sums = _chunk_sums(
            distances.double(),
            query_pids[start:stop].to(device), gallery_pids.to(device),
            query_camids[start:stop].to(device), gallery_camids.to(device),
            max_rank, average_precision,
        )  # fmt: skip
        totals = sums if totals is None else tuple(a + b for a, b in zip(totals, sums))
    ap_sum, inp_sum, cmc_sum, evaluated, skipped = totals
    if evaluated == 0:
        raise InputError(f"cannot evaluate: none of the {num_queries} queries has a match in the gallery from another camera")
    return RetrievalMetrics(
        mAP=float(ap_sum / evaluated),
        mINP=float(inp_sum / evaluated),
        cmc=(cmc_sum / evaluated).tolist(),
        num_queries=evaluated,
        num_skipped=skipped,
    )


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
    """Market-1501 metrics of a distance matrix (Q,G).

    standard AP (torchreid): (1/M) sum_k P(k) rel(k), over the M true matches;
    trapezoid AP (the paper's code): (1/M) sum_i (P_before(i) + P(i)) / 2, with P_before(i) the
    precision just before the i-th hit (1 when it is at rank 1);
    mINP: M / rank of the hardest (last) true match; CMC rank-k: a true match within the top k.
    """
    return _evaluate_chunks(
        lambda start, stop: distmat[start:stop], distmat.shape[0], distmat.shape[1],
        query_pids, gallery_pids, query_camids, gallery_camids, max_rank, average_precision, chunk_size,
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
    """Like ``evaluate_ranking`` but computing distance rows chunk by chunk: the (Q,G) matrix never exists."""
    return _evaluate_chunks(
        lambda start, stop: pairwise_distance(query_features[start:stop], gallery_features, metric, normalize),
        query_features.shape[0], gallery_features.shape[0],
        query_pids, gallery_pids, query_camids, gallery_camids, max_rank, average_precision, chunk_size,
    )  # fmt: skip


def top_k_valid(
    distmat: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """(Q,k) indices of each query's k nearest valid gallery items (same-camera matches and junk removed), -1 padded."""
    device = distmat.device
    order, valid, _ = _ranked_chunk(
        distmat, query_pids.to(device), gallery_pids.to(device), query_camids.to(device), gallery_camids.to(device)
    )
    # Stable sort on "not valid" moves valid items to the front, keeping their distance order.
    front = (~valid).to(torch.uint8).argsort(dim=1, stable=True)[:, :k]
    picked = order.gather(1, front)
    return torch.where(valid.gather(1, front), picked, torch.full_like(picked, -1))
