"""Tracking metrics through TrackEval against values worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from metricattack.video.motfiles import FrameBoxes

pytest.importorskip("trackeval")
from metricattack.video.metrics import tracking_metrics  # noqa: E402

BOX_A, BOX_B = [0, 0, 10, 20], [50, 0, 10, 20]  # never overlapping


def frames(ids_a: list[int], ids_b: list[int]) -> list[FrameBoxes]:
    """One frame per entry: A at BOX_A with id ids_a[t], B at BOX_B with id ids_b[t]."""
    return [FrameBoxes(np.array([BOX_A, BOX_B], float), np.ones(2), np.array([a, b])) for a, b in zip(ids_a, ids_b)]


def test_perfect_tracks_score_one_everywhere():
    truth = frames([1] * 6, [2] * 6)
    result = tracking_metrics(truth, frames([7] * 6, [9] * 6))
    assert result["idsw"] == 0
    for name in ("hota", "deta", "assa", "idf1", "mota", "motp", "precision", "recall"):
        assert result[name] == pytest.approx(1.0), name


def test_one_identity_switch_worked_by_hand():
    # 2 objects, 6 frames, boxes exact. Object A is tracked as 10 in frames 1-3 and as 11 in frames
    # 4-6 (one switch); B as 20 throughout.
    #   CLEAR: TP 12, FN 0, FP 0, IDSW 1 -> MOTA = 1 - (0 + 0 + 1) / 12 = 11/12.
    #   Identity: the best one-to-one id matching is A-10 (or A-11, 3 frames) and B-20 (6 frames):
    #     IDTP 9, IDFN 12 - 9 = 3, IDFP 12 - 9 = 3 -> IDF1 = 2*9 / (2*9 + 3 + 3) = 0.75.
    #   HOTA: every IoU is 1, so DetA = 1 at every threshold; the association score of a match is
    #     TPA / (TPA + FNA + FPA): A's 6 matches 3 / (3 + 3 + 0) = 0.5, B's 6 matches 6/6 = 1
    #     -> AssA = (6 * 0.5 + 6 * 1) / 12 = 0.75, HOTA = sqrt(1 * 0.75).
    result = tracking_metrics(frames([1] * 6, [2] * 6), frames([10, 10, 10, 11, 11, 11], [20] * 6))
    assert result["idsw"] == 1
    assert result["mota"] == pytest.approx(11 / 12)
    assert result["idf1"] == pytest.approx(0.75)
    assert result["deta"] == pytest.approx(1.0)
    assert result["assa"] == pytest.approx(0.75)
    assert result["hota"] == pytest.approx(np.sqrt(0.75))


def test_a_box_on_a_distractor_is_not_a_false_positive():
    # frame 1 has one extra tracker box exactly on a distractor (e.g. a static person): TrackEval's MOT17
    # preprocessing removes it; without the distractor it is a false positive: MOTA = 1 - 1/12.
    truth = frames([1] * 6, [2] * 6)
    tracks = frames([7] * 6, [9] * 6)
    extra = [100, 0, 10, 20]
    tracks[0] = FrameBoxes(np.vstack([tracks[0].boxes, extra]), np.ones(3), np.array([7, 9, 5]))
    distractors = [np.array([extra], float)] + [np.zeros((0, 4))] * 5
    assert tracking_metrics(truth, tracks)["mota"] == pytest.approx(11 / 12)
    assert tracking_metrics(truth, tracks, distractors)["mota"] == pytest.approx(1.0)
