"""Ranking metrics against a slow per-query loop and a hand-worked example."""

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import evaluate_features, evaluate_ranking, pairwise_distance, top_k_valid


def reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, average_precision):
    """One query at a time, written for clarity: returns (mAP, mINP, cmc, evaluated, skipped)."""
    aps, inps, cmcs, skipped = [], [], [], 0
    for i in range(distmat.shape[0]):
        order = sorted(range(distmat.shape[1]), key=lambda j: (float(distmat[i, j]), j))
        kept = [j for j in order if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        hits = [g_pids[j] == q_pids[i] for j in kept]
        if not any(hits):
            skipped += 1
            continue
        hit_ranks = [r + 1 for r, h in enumerate(hits) if h]  # 1-based ranks of true matches
        if average_precision == "standard":
            ap = sum((n + 1) / r for n, r in enumerate(hit_ranks)) / len(hit_ranks)
        else:
            ap = 0.0
            for n, r in enumerate(hit_ranks):
                before = 1.0 if r == 1 else n / (r - 1)
                ap += (before + (n + 1) / r) / 2 / len(hit_ranks)
        aps.append(ap)
        inps.append(len(hit_ranks) / hit_ranks[-1])
        cmcs.append([1.0 if hit_ranks[0] <= k else 0.0 for k in range(1, max_rank + 1)])
    n = len(aps)
    return sum(aps) / n, sum(inps) / n, [sum(c[k] for c in cmcs) / n for k in range(max_rank)], n, skipped


def random_problem(seed, num_query=12, num_gallery=40):
    generator = torch.Generator().manual_seed(seed)
    distmat = torch.randint(0, 6, (num_query, num_gallery), generator=generator).double()  # many ties
    q_pids = torch.randint(1, 6, (num_query,), generator=generator)
    g_pids = torch.randint(-1, 7, (num_gallery,), generator=generator)  # junk (-1), distractors (0), pid 6 never queried
    q_cams = torch.randint(0, 3, (num_query,), generator=generator)
    g_cams = torch.randint(0, 3, (num_gallery,), generator=generator)
    q_pids[0] = 99  # a query without any match
    return distmat, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("average_precision", ["standard", "trapezoid"])
@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_matches_the_reference_loop(seed, average_precision, chunk_size):
    problem = random_problem(seed)
    got = evaluate_ranking(*problem, max_rank=10, average_precision=average_precision, chunk_size=chunk_size)
    mAP, mINP, cmc, evaluated, skipped = reference(*[p.tolist() if p.dim() == 1 else p for p in problem], 10, average_precision)
    assert got.num_queries == evaluated and got.num_skipped == skipped >= 1
    assert got.mAP == pytest.approx(mAP, abs=1e-12)
    assert got.mINP == pytest.approx(mINP, abs=1e-12)
    assert got.cmc == pytest.approx(cmc, abs=1e-12)


def test_hand_worked_example():
    # Query 0 (pid 1, camera 0); gallery by distance: g0 (pid 1, cam 0: same camera, ignored),
    # g1 (pid 2), g2 (pid 1, cam 1: hit at rank 2), g3 (junk, ignored), g4 (pid 3), g5 (pid 1, cam 2: hit at rank 4).
    # Standard AP = (1/2 + 2/4) / 2 = 0.5; trapezoid AP = ((0/1 + 1/2)/2 + (1/3 + 2/4)/2) / 2 = (0.25 + 0.41667) / 2 = 0.33333.
    # INP = 2 / 4 = 0.5; CMC: miss at 1, hit from rank 2.
    # Query 1 (pid 3, camera 1): g4 (pid 3, cam 0) is its only match; ranked g4 first -> AP 1, INP 1, rank-1 hit.
    distmat = torch.tensor([[0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 0, 1]])
    q_pids, g_pids = torch.tensor([1, 3]), torch.tensor([1, 2, 1, -1, 3, 1])
    q_cams, g_cams = torch.tensor([0, 1]), torch.tensor([0, 0, 1, 0, 0, 2])
    standard = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=4)
    assert standard.mAP == pytest.approx((0.5 + 1.0) / 2)
    assert standard.mINP == pytest.approx((0.5 + 1.0) / 2)
    assert standard.cmc == pytest.approx([0.5, 1.0, 1.0, 1.0])
    trapezoid = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=4, average_precision="trapezoid")
    assert trapezoid.mAP == pytest.approx((((0 + 0.5) / 2 + (1 / 3 + 0.5) / 2) / 2 + 1.0) / 2)
    # Valid lists: query 0 drops g0 (same camera) and g3 (junk); query 1 drops only g3 (junk).
    assert top_k_valid(distmat, q_pids, g_pids, q_cams, g_cams, 6).tolist() == [[1, 2, 4, 5, -1, -1], [4, 5, 2, 1, 0, -1]]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_valid_matches_the_loop(seed):
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(seed)
    top = top_k_valid(distmat, q_pids, g_pids, q_cams, g_cams, 8)
    for i in range(distmat.shape[0]):
        order = sorted(range(distmat.shape[1]), key=lambda j: (float(distmat[i, j]), j))
        kept = [j for j in order if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        expected = (kept + [-1] * 8)[:8]
        assert top[i].tolist() == expected


def test_evaluate_features_equals_the_matrix_route():
    generator = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(20, 8, generator=generator), torch.randn(50, 8, generator=generator)
    labels = (torch.randint(1, 5, (20,), generator=generator), torch.randint(1, 5, (50,), generator=generator),
              torch.randint(0, 3, (20,), generator=generator), torch.randint(0, 3, (50,), generator=generator))
    direct = evaluate_ranking(pairwise_distance(query, gallery, "cosine"), *labels)
    chunked = evaluate_features(query, gallery, *labels, metric="cosine", chunk_size=3)
    assert chunked.mAP == pytest.approx(direct.mAP) and chunked.cmc == pytest.approx(direct.cmc)


def test_empty_and_hopeless_inputs_are_errors():
    with pytest.raises(InputError, match="0 queries"):
        evaluate_ranking(torch.zeros(0, 3), torch.zeros(0), torch.zeros(3), torch.zeros(0), torch.zeros(3))
    with pytest.raises(InputError, match="none of the 1 queries has a match"):
        evaluate_ranking(torch.zeros(1, 2), torch.tensor([1]), torch.tensor([2, 1]), torch.tensor([0]), torch.tensor([0, 0]))
    with pytest.raises(InputError, match="unknown average precision"):
        evaluate_ranking(torch.zeros(1, 1), torch.tensor([1]), torch.tensor([1]), torch.tensor([0]), torch.tensor([1]), average_precision="x")
