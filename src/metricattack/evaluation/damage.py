"""Ranking damage: how an attack changed each query's ranked list, beyond mAP.

A ``RankingSummary`` keeps, per query, the rank of its first true match and its top-k valid gallery
items (Market-1501 protocol: junk and same-identity same-camera items removed, ties in gallery order).
``ranking_damage`` compares a clean and an attacked summary over the evaluated queries (those with at
least one valid true match, as for mAP):

- match rank before / after: mean and median of the first true match's rank;
- top-k overlap: mean over queries of |A ∩ B| / k, A and B the clean and attacked top-k lists
  (k = min(10, number of valid gallery items));
- rank-1 changed: share of queries whose rank-1 gallery item is another image than before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.errors import InputError
from metricattack.evaluation.match_ranks import MatchRanker, identity_pairs, positions_in_rows
from metricattack.evaluation.ranking import _all_labels, _auto_chunk_size, top_k_valid

OVERLAP_K = 10


@dataclass
class RankingSummary:
    """Per query: the rank of the first true match and the top-k valid gallery indices."""

    first_match_rank: torch.Tensor  # (Q,) long, 1-based among valid items; 0: no valid true match
    top: torch.Tensor  # (Q,k) long, gallery indices, -1 where fewer than k items are valid


def summarize_ranking(
    distances: torch.Tensor,
    query_pids: torch.Tensor,
    gallery_pids: torch.Tensor,
    query_camids: torch.Tensor,
    gallery_camids: torch.Tensor,
    k: int = OVERLAP_K,
    chunk_size: int | None = None,
) -> RankingSummary:
    """The ``RankingSummary`` (on the CPU) of a distance matrix (Q,G), ``chunk_size`` queries at a time, without
    sorting rows: first-match ranks as the evaluation counts them, top-k lists by a masked top-k."""
    if distances.dim() != 2:
        raise InputError(f"distances must be a (Q,G) matrix, got shape {tuple(distances.shape)}")
    distances = distances.detach()
    num_queries, num_gallery = distances.shape
    labels = (query_pids, gallery_pids, query_camids, gallery_camids)
    ranker = MatchRanker(identity_pairs(*_all_labels(labels, num_queries, num_gallery, distances.device)))
    tops = top_k_valid(distances, *labels, k).cpu()
    first_ranks = torch.zeros(num_queries, dtype=torch.long)
    size = _auto_chunk_size(chunk_size, num_gallery)
    for start in range(0, num_queries, size):
        rows, ranks = ranker(distances[start : start + size], start)  # by row, then rank
        _, position = positions_in_rows(rows, min(size, num_queries - start))
        first = position == 0
        first_ranks[start + rows[first].cpu()] = ranks[first].cpu()
    return RankingSummary(first_ranks, tops)


def _mean_median(values: torch.Tensor) -> tuple[float | None, float | None]:
    """Mean and median (the mean of the two middle values for an even count); None for no values."""
    if len(values) == 0:
        return None, None
    values = values.double()
    return values.mean().item(), values.quantile(0.5).item()


def match_rank_stats(summary: RankingSummary) -> dict:
    """Mean and median rank of the first true match over the evaluated queries."""
    mean, median = _mean_median(summary.first_match_rank[summary.first_match_rank > 0])
    return {"match_rank_mean": mean, "match_rank_median": median}


def ranking_damage(clean: RankingSummary, attacked: RankingSummary) -> dict:
    """Match rank before / after, top-k overlap and rank-1 change over the evaluated queries (see the module docstring)."""
    if clean.top.shape != attacked.top.shape:
        raise InputError(f"ranking summaries differ in shape: {tuple(clean.top.shape)} and {tuple(attacked.top.shape)}")
    evaluated = clean.first_match_rank > 0  # which queries have a valid true match: labels only, so the same after
    before, after = match_rank_stats(clean), match_rank_stats(attacked)
    clean_top, attacked_top = clean.top[evaluated], attacked.top[evaluated]  # (E,k)
    listed = (clean_top >= 0).sum(dim=1).clamp(min=1)  # valid items per list: the same before and after
    common = ((clean_top[:, :, None] == attacked_top[:, None, :]) & (clean_top >= 0)[:, :, None]).any(dim=2).sum(dim=1)
    has_any = len(clean_top) > 0
    return {
        "clean_match_rank_mean": before["match_rank_mean"],
        "clean_match_rank_median": before["match_rank_median"],
        **after,
        "top10_overlap": (common.double() / listed).mean().item() if has_any else None,
        "rank1_changed": (clean_top[:, 0] != attacked_top[:, 0]).double().mean().item() if has_any else None,
    }
