"""Ranking metrics against slow per-query loops and a hand-worked example."""

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import (
    DISTANCE_METRICS,
    RetrievalMetrics,
    evaluate_features,
    evaluate_ranking,
    pairwise_distance,
    top_k_valid,
)
from metricattack.evaluation import ranking


# --- slow references, one query at a time in plain Python -------------------------------------
def kept_gallery(distances: list[float], q_pid: int, q_cam: int, g_pids: list[int], g_cams: list[int]) -> list[int]:
    """Gallery indices by distance (ties: gallery order), without junk and same-pid-same-camera items."""
    order = sorted(range(len(distances)), key=lambda j: (distances[j], j))
    return [j for j in order if g_pids[j] != -1 and not (g_pids[j] == q_pid and g_cams[j] == q_cam)]


def torchreid_ap(raw_cmc: list[int]) -> float:
    """torchreid eval_market1501: cumsum of matches / position, summed at the matches, over the matches."""
    hits, total = 0, 0.0
    for position, match in enumerate(raw_cmc):
        hits += match
        total += hits / (position + 1) * match
    return total / sum(raw_cmc)


def market_ap(raw_cmc: list[int]) -> float:
    """Market-1501 compute_mAP (the paper's code): trapezoids between the precision before and at each hit."""
    rows_good = [position for position, match in enumerate(raw_cmc) if match]
    ngood, ap = len(rows_good), 0.0
    for i in range(ngood):
        d_recall = 1.0 / ngood
        precision = (i + 1) / (rows_good[i] + 1)
        old_precision = i / rows_good[i] if rows_good[i] != 0 else 1.0
        ap += d_recall * (old_precision + precision) / 2
    return ap


def reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, average_precision):
    """(mAP, mINP, cmc, evaluated, skipped) from one query at a time."""
    aps, inps, cmcs, skipped = [], [], [], 0
    for i, row in enumerate(distmat.tolist()):
        kept = kept_gallery(row, q_pids[i], q_cams[i], g_pids, g_cams)
        raw_cmc = [int(g_pids[j] == q_pids[i]) for j in kept]
        if not any(raw_cmc):
            skipped += 1
            continue
        aps.append(torchreid_ap(raw_cmc) if average_precision == "standard" else market_ap(raw_cmc))
        last = max(position for position, match in enumerate(raw_cmc) if match)
        inps.append(sum(raw_cmc) / (last + 1))
        cmcs.append([1.0 if any(raw_cmc[:k]) else 0.0 for k in range(1, max_rank + 1)])
    n = len(aps)
    if n == 0:
        return None
    return sum(aps) / n, sum(inps) / n, [sum(c[k] for c in cmcs) / n for k in range(max_rank)], n, skipped


def random_problem(seed: int):
    """Integer distances (many ties), junk (-1), distractors (0), same-camera matches, a hopeless query."""
    generator = torch.Generator().manual_seed(seed)
    num_query = int(torch.randint(1, 16, (), generator=generator))
    num_gallery = int(torch.randint(1, 41, (), generator=generator))
    dtype = (torch.float32, torch.float64)[seed % 2]
    distmat = torch.randint(0, 6, (num_query, num_gallery), generator=generator).to(dtype)
    q_pids = torch.randint(1, 6, (num_query,), generator=generator)
    g_pids = torch.randint(-1, 7, (num_gallery,), generator=generator)  # pid 6 is never queried
    q_cams = torch.randint(0, 3, (num_query,), generator=generator)
    g_cams = torch.randint(0, 3, (num_gallery,), generator=generator)
    if num_query > 1:
        q_pids[0] = 99  # no match at all
    max_rank = int(torch.randint(1, 13, (), generator=generator))
    return (distmat, q_pids, g_pids, q_cams, g_cams), max_rank


@pytest.mark.parametrize("seed", range(60))
def test_matches_the_reference_loop(seed):
    problem, max_rank = random_problem(seed)
    lists = [problem[0]] + [labels.tolist() for labels in problem[1:]]
    for average_precision in ("standard", "trapezoid"):
        expected = reference(*lists, max_rank, average_precision)
        for chunk_size in (None, 1, 2, 7):
            if expected is None:
                with pytest.raises(InputError, match="none of the"):
                    evaluate_ranking(*problem, max_rank, average_precision, chunk_size)
                continue
            got = evaluate_ranking(*problem, max_rank, average_precision, chunk_size)
            mAP, mINP, cmc, evaluated, skipped = expected
            assert (got.num_queries, got.num_skipped) == (evaluated, skipped)
            assert got.mAP == pytest.approx(mAP, abs=1e-12)
            assert got.mINP == pytest.approx(mINP, abs=1e-12)
            assert got.cmc == pytest.approx(cmc, abs=1e-12) and len(got.cmc) == max_rank


def test_random_problems_exercise_every_case():
    """The randomized problems above contain ties, junk, same-camera matches and skipped queries."""
    seen = {"tie": 0, "junk": 0, "same_camera_match": 0, "skipped": 0, "all_skipped": 0}
    for seed in range(60):
        (distmat, q_pids, g_pids, q_cams, g_cams), max_rank = random_problem(seed)
        seen["tie"] += any(len(set(row)) < len(row) for row in distmat.tolist())
        seen["junk"] += bool((g_pids == -1).any())
        seen["same_camera_match"] += bool(((q_pids[:, None] == g_pids) & (q_cams[:, None] == g_cams)).any())
        lists = [distmat] + [labels.tolist() for labels in (q_pids, g_pids, q_cams, g_cams)]
        expected = reference(*lists, max_rank, "standard")
        seen["all_skipped"] += expected is None
        seen["skipped"] += expected is not None and expected[4] > 0
    assert min(seen.values()) > 0, seen


def test_hand_worked_example():
    # Gallery:  g0 pid 1 cam 0 | g1 pid 2 cam 0 | g2 pid 1 cam 1 | g3 junk | g4 pid 3 cam 0 | g5 pid 1 cam 2
    # Query A (pid 1, cam 0), distances 0 2 2 1 3 3: stable order g0 g3 g1 g2 g4 g5 (g1 before g2 and g4
    #   before g5 by gallery order). g0 is same pid + same camera and g3 junk, both removed: valid list
    #   g1 g2 g4 g5, true matches g2 (rank 2) and g5 (rank 4), M = 2.
    #   standard AP = (1/2 + 2/4) / 2 = 0.5
    #   trapezoid AP = [(0/1 + 1/2)/2 + (1/3 + 2/4)/2] / 2 = (1/4 + 5/12) / 2 = 1/3
    #   INP = 2/4 = 0.5; first hit at rank 2 -> CMC 0 1 1 1 1
    # Query B (pid 3, cam 1), distances 5 4 3 2 0 1: order g4 g5 g3 g2 g1 g0; g3 (junk) removed;
    #   g4 (pid 3, other camera) is the only match, at rank 1: AP 1 (both), INP 1, CMC 1 1 1 1 1.
    # Query C (pid 2, cam 0): its only same-pid item g1 is in camera 0 -> no valid match, skipped.
    # Means over A and B: mAP 0.75 (standard) or (1/3 + 1)/2 = 2/3 (trapezoid), mINP 0.75,
    # CMC 0.5 1 1 1 1; 2 queries evaluated, 1 skipped.
    distmat = torch.tensor([[0.0, 2, 2, 1, 3, 3], [5.0, 4, 3, 2, 0, 1], [1.0, 0, 2, 3, 4, 5]])
    q_pids, g_pids = torch.tensor([1, 3, 2]), torch.tensor([1, 2, 1, -1, 3, 1])
    q_cams, g_cams = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1, 0, 0, 2])
    standard = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    assert standard.mAP == pytest.approx(0.75)
    assert standard.mINP == pytest.approx(0.75)
    assert standard.cmc == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])
    assert (standard.num_queries, standard.num_skipped) == (2, 1)
    trapezoid = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5, average_precision="trapezoid")
    assert trapezoid.mAP == pytest.approx(2 / 3)
    assert trapezoid.mINP == standard.mINP and trapezoid.cmc == standard.cmc
    # Valid lists (k = 7 > 6 gallery items, so -1 padded); C keeps g0 (pid 1) and drops g1 and g3.
    top = top_k_valid(distmat, q_pids, g_pids, q_cams, g_cams, 7)
    assert top.dtype == torch.long
    assert top.tolist() == [[1, 2, 4, 5, -1, -1, -1], [4, 5, 2, 1, 0, -1, -1], [0, 2, 4, 5, -1, -1, -1]]
    assert standard.as_dict() == {
        "mAP": pytest.approx(0.75), "mINP": pytest.approx(0.75), "rank1": 0.5, "rank5": 1.0, "rank10": None,
        "num_queries": 2, "num_skipped": 1,
    }  # fmt: skip


def test_rank_reads_the_cmc():
    metrics = RetrievalMetrics(mAP=0.5, mINP=0.25, cmc=[0.1, 0.2, 0.3], num_queries=3, num_skipped=0)
    assert metrics.rank(1) == 0.1 and metrics.rank(3) == 0.3
    with pytest.raises(InputError, match="rank-4 is not known: the CMC covers ranks 1 to 3"):
        metrics.rank(4)
    with pytest.raises(InputError, match="rank-0"):
        metrics.rank(0)


@pytest.mark.parametrize("seed", range(20))
def test_top_k_valid_matches_the_loop(seed, monkeypatch):
    (distmat, q_pids, g_pids, q_cams, g_cams), _ = random_problem(seed)
    monkeypatch.setattr(ranking, "_CHUNK_BYTES", 3 * distmat.shape[1] * ranking._BYTES_PER_PAIR)  # 3 queries a chunk
    for k in (1, 5, 50):
        top = top_k_valid(distmat, q_pids, g_pids, q_cams, g_cams, k)
        assert top.shape == (distmat.shape[0], k)
        for i, row in enumerate(distmat.tolist()):
            kept = kept_gallery(row, int(q_pids[i]), int(q_cams[i]), g_pids.tolist(), g_cams.tolist())
            assert top[i].tolist() == (kept + [-1] * k)[:k]


def test_automatic_chunks_stay_within_the_budget(monkeypatch):
    assert ranking._auto_chunk_size(None, 82_161) * 82_161 * ranking._BYTES_PER_PAIR <= 256 * 2**20
    assert ranking._auto_chunk_size(None, 10**9) == 1
    # With a tiny budget the automatic chunking runs many chunks and still agrees with one chunk.
    problem, max_rank = random_problem(4)
    whole = evaluate_ranking(*problem, max_rank=max_rank, chunk_size=10**6)
    monkeypatch.setattr(ranking, "_CHUNK_BYTES", 1)
    chunked = evaluate_ranking(*problem, max_rank=max_rank)
    assert (chunked.num_queries, chunked.num_skipped, chunked.cmc) == (whole.num_queries, whole.num_skipped, whole.cmc)
    assert (chunked.mAP, chunked.mINP) == pytest.approx((whole.mAP, whole.mINP), abs=1e-12)


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
def test_evaluate_features_equals_the_matrix_route(metric, normalize):
    generator = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(20, 8, generator=generator), torch.randn(50, 8, generator=generator)
    labels = (
        torch.randint(1, 5, (20,), generator=generator), torch.randint(-1, 5, (50,), generator=generator),
        torch.randint(0, 3, (20,), generator=generator), torch.randint(0, 3, (50,), generator=generator),
    )  # fmt: skip
    for average_precision in ("standard", "trapezoid"):
        direct = evaluate_ranking(pairwise_distance(query, gallery, metric, normalize), *labels, max_rank=10,
                                  average_precision=average_precision)  # fmt: skip
        for chunk_size in (None, 3):
            chunked = evaluate_features(query, gallery, *labels, metric=metric, normalize=normalize, max_rank=10,
                                        average_precision=average_precision, chunk_size=chunk_size)  # fmt: skip
            assert (chunked.num_queries, chunked.num_skipped) == (direct.num_queries, direct.num_skipped)
            assert chunked.mAP == pytest.approx(direct.mAP, abs=1e-12)
            assert chunked.mINP == pytest.approx(direct.mINP, abs=1e-12)
            assert chunked.cmc == pytest.approx(direct.cmc, abs=1e-12)


def test_a_distance_matrix_that_requires_grad_is_accepted():
    query = torch.randn(4, 3, requires_grad=True)
    distmat = pairwise_distance(query, query.detach())
    labels = torch.tensor([1, 1, 2, 2]), torch.tensor([0, 1, 0, 1])
    metrics = evaluate_ranking(distmat, labels[0], labels[0], labels[1], labels[1], max_rank=2)
    assert metrics == evaluate_ranking(distmat.detach(), labels[0], labels[0], labels[1], labels[1], max_rank=2)
    assert top_k_valid(distmat, labels[0], labels[0], labels[1], labels[1], 2).shape == (4, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    problem, max_rank = random_problem(2)
    on_cpu = evaluate_ranking(*problem, max_rank=max_rank, average_precision="trapezoid")
    on_cuda = evaluate_ranking(problem[0].cuda(), *problem[1:], max_rank=max_rank, average_precision="trapezoid")
    assert on_cuda.mAP == pytest.approx(on_cpu.mAP) and on_cuda.cmc == pytest.approx(on_cpu.cmc)
    assert torch.equal(top_k_valid(problem[0].cuda(), *problem[1:], 5).cpu(), top_k_valid(*problem, 5))


def test_bad_inputs_are_errors():
    one, two = torch.tensor([1]), torch.tensor([1, 2])
    with pytest.raises(InputError, match="0 queries and 3 gallery images"):
        evaluate_ranking(torch.zeros(0, 3), torch.zeros(0), torch.zeros(3), torch.zeros(0), torch.zeros(3))
    with pytest.raises(InputError, match="1 queries and 0 gallery images"):
        evaluate_features(torch.zeros(1, 4), torch.zeros(0, 4), one, torch.zeros(0), one, torch.zeros(0))
    with pytest.raises(InputError, match="none of the 1 queries has a match"):
        evaluate_ranking(torch.zeros(1, 2), one, torch.tensor([2, 1]), torch.tensor([0]), torch.tensor([0, 0]))
    with pytest.raises(InputError, match="unknown average precision 'x'.*standard, trapezoid"):
        evaluate_ranking(torch.zeros(1, 1), one, one, one, one, average_precision="x")
    with pytest.raises(InputError, match="max_rank must be at least 1"):
        evaluate_ranking(torch.zeros(1, 1), one, one, one, one, max_rank=0)
    with pytest.raises(InputError, match="chunk_size must be at least 1"):
        evaluate_ranking(torch.zeros(1, 1), one, one, one, one, chunk_size=0)
    with pytest.raises(InputError, match=r"gallery_camids has shape \(2,\), expected \(1,\)"):
        evaluate_ranking(torch.zeros(1, 1), one, one, one, two)
    with pytest.raises(InputError, match=r"distmat must be a \(Q,G\) matrix"):
        evaluate_ranking(torch.zeros(3), one, one, one, one)
    with pytest.raises(InputError, match="k must be at least 1"):
        top_k_valid(torch.zeros(1, 1), one, one, one, one, 0)
    with pytest.raises(InputError, match=r"query_pids has shape \(2,\), expected \(1,\)"):
        top_k_valid(torch.zeros(1, 1), two, one, one, one, 1)
    with pytest.raises(InputError, match="unknown distance"):
        evaluate_features(torch.zeros(1, 2), torch.zeros(1, 2), one, one, one, two[1:], metric="manhattan")


# --- the same metrics whatever the chunking ------------------------------------------------------
def test_copied_gallery_item_gives_the_same_metrics_for_every_chunk_size():
    # The counterexample: gallery item 1 copies item 0 (pids 1 and 0), so both queries see
    # a tie. A one-row chunk used to compute its distances with another matrix product than the
    # whole matrix, broke the tie the other way and moved mAP from 1.0 to 0.75.
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        query, gallery = torch.randn(2, 512, generator=generator), torch.randn(1, 512, generator=generator).repeat(2, 1)
        labels = torch.tensor([1, 0]), torch.tensor([1, 0]), torch.tensor([0, 0]), torch.tensor([1, 1])
        results = {chunk: evaluate_features(query, gallery, *labels, chunk_size=chunk) for chunk in (None, 1, 2)}
        assert results[1] == results[None] == results[2]
        rows = ranking.BlockedDistances(query, gallery, block=2).rows(0, 2)  # min(256, Q) queries a block
        mAP, *_ = reference(rows, *(labels_.tolist() for labels_ in labels), 50, "standard")
        assert results[None].mAP == mAP


def tied_features(seed: int):
    """Small-integer features (so distances tie exactly), with copied gallery items and queries."""
    generator = torch.Generator().manual_seed(seed)
    num_query = int(torch.randint(1, 12, (), generator=generator))
    num_gallery = int(torch.randint(2, 30, (), generator=generator))
    query = torch.randint(-2, 3, (num_query, 4), generator=generator).float()
    gallery = torch.randint(-2, 3, (num_gallery, 4), generator=generator).float()
    gallery[num_gallery // 2 :] = gallery[: num_gallery - num_gallery // 2].clone()  # copied items
    query[num_query // 2 :] += 0.1 * torch.randn(num_query - num_query // 2, 4, generator=generator)  # and no ties
    labels = tuple(
        torch.randint(low, high, (size,), generator=generator)
        for low, high, size in ((0, 4, num_query), (-1, 4, num_gallery), (0, 2, num_query), (0, 2, num_gallery))
    )
    return query, gallery, labels


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("block", [256, 3])
def test_evaluate_features_does_not_depend_on_the_chunk_size(seed, block, monkeypatch):
    monkeypatch.setattr(ranking, "ROW_BLOCK", block)
    query, gallery, labels = tied_features(seed)
    lists = [label.tolist() for label in labels]
    rows = ranking.BlockedDistances(query, gallery, "euclidean", False, min(block, len(query))).rows(0, len(query))
    for average_precision in ("standard", "trapezoid"):
        expected = reference(rows, *lists, 5, average_precision)
        first = None  # the result without chunks, which every chunk size must give exactly
        for chunk_size in (None, 1, 2, 3, 4, 7, 100):
            if expected is None:
                with pytest.raises(InputError, match="none of the"):
                    evaluate_features(query, gallery, *labels, max_rank=5, average_precision=average_precision)
                break
            got = evaluate_features(query, gallery, *labels, max_rank=5, average_precision=average_precision,
                                    chunk_size=chunk_size)  # fmt: skip
            first = got if chunk_size is None else first
            assert got == first  # exactly: the same rows, summed in the same order
            mAP, mINP, cmc, evaluated, skipped = expected
            assert (got.num_queries, got.num_skipped) == (evaluated, skipped)
            assert got.mAP == pytest.approx(mAP, abs=1e-12) and got.mINP == pytest.approx(mINP, abs=1e-12)
            assert got.cmc == pytest.approx(cmc, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_continuous_distances_with_copies_and_infinities_match_the_loop(seed):
    # Wider rows than random_problem's: many buckets, few items sharing one with a match; some
    # distances repeated exactly, some infinite.
    generator = torch.Generator().manual_seed(seed)
    num_query, num_gallery = 9, 300
    distmat = torch.rand(num_query, num_gallery, generator=generator, dtype=torch.float64) * 10 ** (seed % 4)
    distmat[:, 150:] = distmat[:, :150].clone()  # every distance twice
    if seed % 3 == 1:
        distmat[0, 7] = distmat[2, 200] = torch.inf
        distmat[1, 3] = -torch.inf
    if seed % 3 == 2:
        distmat[4] = distmat[4].round()  # few distinct values: big ties, flat spans
    distmat = distmat.to((torch.float32, torch.float64)[seed % 2])
    labels = tuple(
        torch.randint(low, high, (size,), generator=generator)
        for low, high, size in ((0, 5, num_query), (-1, 5, num_gallery), (0, 3, num_query), (0, 3, num_gallery))
    )
    labels[1][7] = labels[0][0]  # the infinite distance of query 0 is a match in another camera
    labels[3][7] = (labels[2][0] + 1) % 3
    lists = [label.tolist() for label in labels]
    for average_precision in ("standard", "trapezoid"):
        mAP, mINP, cmc, evaluated, skipped = reference(distmat, *lists, 20, average_precision)
        for chunk_size in (None, 4):
            got = evaluate_ranking(distmat, *labels, max_rank=20, average_precision=average_precision,
                                   chunk_size=chunk_size)  # fmt: skip
            assert (got.num_queries, got.num_skipped) == (evaluated, skipped)
            assert got.mAP == pytest.approx(mAP, abs=1e-12) and got.mINP == pytest.approx(mINP, abs=1e-12)
            assert got.cmc == pytest.approx(cmc, abs=1e-12)
    top = top_k_valid(distmat, *labels, 12)
    for i, row in enumerate(distmat.tolist()):
        assert top[i].tolist() == kept_gallery(row, lists[0][i], lists[2][i], lists[1], lists[3])[:12]


def test_nan_distances_are_errors():
    one = torch.tensor([1])
    with pytest.raises(InputError, match="distmat contains NaN"):
        evaluate_ranking(torch.tensor([[0.5, torch.nan]]), one, torch.tensor([1, 2]), torch.tensor([0]),
                         torch.tensor([1, 1]))  # fmt: skip
    with pytest.raises(InputError, match="features contain NaN or infinite"):
        evaluate_features(torch.tensor([[0.5, torch.inf]]), torch.ones(2, 2), one, torch.tensor([1, 2]),
                          torch.tensor([0]), torch.tensor([1, 1]))  # fmt: skip
