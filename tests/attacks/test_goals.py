"""Goal tests of early stopping against hand-worked rankings and a brute-force count."""

from __future__ import annotations

import torch

from metricattack.experiment import goals


def test_kth_smallest_by_hand():
    distances = torch.tensor([[0.5, 0.1, 0.3, 0.2], [0.4, 0.9, 0.8, 0.7]])
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    assert torch.equal(goals.kth_smallest(distances, mask, 2), distances[[0, 1], [2, 1]])  # row 1: its only item
    assert torch.equal(goals.kth_smallest(distances, mask, 1), distances[[0, 1], [3, 1]])


def brute_force_rank_of_nearest_own(distances, own_valid, impostors):
    """Per image, how many impostors are nearer than its nearest valid own reference (a plain loop)."""
    counts = []
    for row, own, imp in zip(distances.tolist(), own_valid.tolist(), impostors.tolist()):
        nearest = min(d for d, o in zip(row, own) if o)
        counts.append(sum(1 for d, i in zip(row, imp) if i and d < nearest))
    return counts


def test_behind_impostors_against_a_loop():
    generator = torch.Generator().manual_seed(0)
    distances = torch.rand(20, 12, generator=generator)
    own_valid = torch.zeros(20, 12, dtype=torch.bool)
    own_valid[:, :3] = True
    impostors = ~own_valid
    impostors[:, -1] = False  # a junk reference: neither
    counts = brute_force_rank_of_nearest_own(distances, own_valid, impostors)
    for k in (1, 4, 8, 20):
        expected = [c >= min(k, 8) for c in counts]
        assert goals.behind_impostors(distances, own_valid, impostors, k).tolist() == expected


def test_thresholds_and_target_tests_by_hand():
    distances = torch.tensor([[0.5, 0.2, 0.9], [0.1, 0.6, 0.3]])  # 2 images x 3 references
    own_valid = torch.tensor([[True, True, False], [False, True, False]])
    thresholds = torch.tensor([0.4, 0.3, 0.0])
    # Image 0: reference 0 (0.5 > 0.4) and 1 (0.2 < 0.3): not yet; image 1: reference 1 (0.6 > 0.3): done.
    assert goals.behind_thresholds(distances, own_valid, thresholds).tolist() == [False, True]
    target = torch.tensor([[False, True, False], [True, False, False]])
    competitors = ~target
    assert goals.target_first(distances, target, competitors).tolist() == [True, True]
    # Target 0 (0.5) behind competitor 1 (0.2); target 2 (0.3) behind competitor 0 (0.1).
    other_target = torch.tensor([[True, False, False], [False, False, True]])
    assert goals.target_first(distances, other_target, ~other_target).tolist() == [False, False]
    assert goals.ahead_of_thresholds(distances, target, torch.tensor([0.2, 0.25, 1.0])).tolist() == [True, True]
    assert goals.ahead_of_thresholds(distances, target, torch.tensor([0.05, 0.25, 1.0])).tolist() == [True, False]
