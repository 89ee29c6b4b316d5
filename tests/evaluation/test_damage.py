"""Ranking damage on a hand-worked example."""

from __future__ import annotations

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation.damage import _mean_median, match_rank_stats, ranking_damage, summarize_ranking

# Queries: pid 1 and pid 2 in camera 0, pid 4 (no match: skipped). Gallery: pids 1, 2, 1, 3, junk;
# gallery item 2 (pid 1, camera 0) is a same-camera match for query 0, so it does not count for it.
QUERY_PIDS, QUERY_CAMIDS = torch.tensor([1, 2, 4]), torch.tensor([0, 0, 0])
GALLERY_PIDS, GALLERY_CAMIDS = torch.tensor([1, 2, 1, 3, -1]), torch.tensor([1, 1, 0, 1, 1])
LABELS = (QUERY_PIDS, GALLERY_PIDS, QUERY_CAMIDS, GALLERY_CAMIDS)
CLEAN = torch.tensor([
    [0.1, 0.5, 0.0, 0.3, 0.05],  # valid order 0, 3, 1: first match (item 0) at rank 1
    [0.4, 0.2, 0.1, 0.3, 0.0],   # valid order 2, 1, 3, 0: first match (item 1) at rank 2
    [0.1, 0.2, 0.3, 0.4, 0.5],
])  # fmt: skip
ATTACKED = torch.tensor([
    [0.6, 0.2, 0.0, 0.1, 0.0],   # valid order 3, 1, 0: rank 3
    [0.3, 0.5, 0.1, 0.2, 0.0],   # valid order 2, 3, 0, 1: rank 4
    [0.5, 0.4, 0.3, 0.2, 0.1],
])  # fmt: skip


def test_summary_holds_first_match_ranks_and_valid_top_lists():
    summary = summarize_ranking(CLEAN, *LABELS, k=4)
    assert summary.first_match_rank.tolist() == [1, 2, 0]
    assert summary.top.tolist() == [[0, 3, 1, -1], [2, 1, 3, 0], [0, 1, 2, 3]]
    assert summary.top.tolist() == summarize_ranking(CLEAN, *LABELS, k=4, chunk_size=1).top.tolist()


def test_damage_by_hand():
    # top-2 lists: query 0 [0, 3] -> [3, 1] (1 in common, rank 1 changed); query 1 [2, 1] -> [2, 3] (1, unchanged)
    damage = ranking_damage(summarize_ranking(CLEAN, *LABELS, k=2), summarize_ranking(ATTACKED, *LABELS, k=2))
    assert damage == pytest.approx({
        "clean_match_rank_mean": 1.5, "clean_match_rank_median": 1.5, "match_rank_mean": 3.5, "match_rank_median": 3.5,
        "top10_overlap": 0.5, "rank1_changed": 0.5,
    })  # fmt: skip
    # With k = 10 each list holds all its valid items (3 and 4): the same sets, full overlap.
    assert ranking_damage(summarize_ranking(CLEAN, *LABELS), summarize_ranking(ATTACKED, *LABELS))["top10_overlap"] == 1.0


def test_an_unchanged_ranking_has_no_damage():
    summary = summarize_ranking(CLEAN, *LABELS)
    damage = ranking_damage(summary, summary)
    assert damage["top10_overlap"] == 1.0 and damage["rank1_changed"] == 0.0
    assert damage["match_rank_mean"] == damage["clean_match_rank_mean"]


def test_mean_and_median():
    assert _mean_median(torch.tensor([1, 2, 10, 3])) == (4.0, 2.5)  # even count: mean of the middle two
    assert _mean_median(torch.tensor([7, 1, 2])) == pytest.approx((10 / 3, 2.0))
    no_match = summarize_ranking(CLEAN[2:], QUERY_PIDS[2:], GALLERY_PIDS, QUERY_CAMIDS[2:], GALLERY_CAMIDS)
    assert match_rank_stats(no_match) == {"match_rank_mean": None, "match_rank_median": None}


def test_shapes_are_checked():
    with pytest.raises(InputError, match="differ in shape"):
        ranking_damage(summarize_ranking(CLEAN, *LABELS, k=2), summarize_ranking(CLEAN, *LABELS, k=3))


def sorted_summary(distances, query_pids, gallery_pids, query_camids, gallery_camids, k):
    """The slow reference: sort each row (stable: ties in gallery order), drop junk and same-camera matches."""
    first, tops = [], []
    for row, (pid, camid) in enumerate(zip(query_pids.tolist(), query_camids.tolist())):
        order = sorted(range(len(gallery_pids)), key=lambda j: (float(distances[row, j]), j))
        valid = [j for j in order if gallery_pids[j] != -1 and not (gallery_pids[j] == pid and gallery_camids[j] == camid)]
        first.append(next((rank for rank, j in enumerate(valid, 1) if gallery_pids[j] == pid), 0))
        tops.append((valid + [-1] * k)[:k])
    return first, tops


@pytest.mark.parametrize("seed", range(6))
def test_summary_equals_sorting_each_row(seed):
    generator = torch.Generator().manual_seed(seed)
    num_queries, num_gallery = 23, 57
    query_pids, gallery_pids = torch.randint(1, 6, (num_queries,), generator=generator), torch.randint(-1, 6, (num_gallery,), generator=generator)
    query_camids, gallery_camids = torch.randint(0, 3, (num_queries,), generator=generator), torch.randint(0, 3, (num_gallery,), generator=generator)
    distances = torch.rand(num_queries, num_gallery, generator=generator)
    if seed % 2:
        distances = distances.mul(4).round()  # many exact ties
    labels = (query_pids, gallery_pids, query_camids, gallery_camids)
    first, tops = sorted_summary(distances, *labels, k=10)
    for chunk_size in (None, 1, 5):
        summary = summarize_ranking(distances, *labels, k=10, chunk_size=chunk_size)
        assert summary.first_match_rank.tolist() == first
        assert summary.top.tolist() == tops
