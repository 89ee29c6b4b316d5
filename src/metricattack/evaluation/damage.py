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
from metricattack.evaluation.ranking import ranked_chunks, top_valid

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
    """The ``RankingSummary`` (on the CPU) of a distance matrix (Q,G), computed ``chunk_size`` queries at a time."""
    first_ranks, tops = [], []
    for _, _, order, valid, matches in ranked_chunks(distances, query_pids, gallery_pids, query_camids, gallery_camids, chunk_size):
        valid_rank = valid.cumsum(dim=1)  # (c,G) 1-based rank among valid items
        first = matches.to(torch.uint8).argmax(dim=1)  # the first true match of each row (0 when none)
        first_ranks.append(torch.where(matches.any(dim=1), valid_rank.gather(1, first[:, None])[:, 0], 0).cpu())
        tops.append(top_valid(order, valid, k).cpu())
    return RankingSummary(torch.cat(first_ranks), torch.cat(tops))


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
