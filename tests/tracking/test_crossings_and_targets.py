"""Crossing pairs, identity matching, switch reading and the per-frame attack targets, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metricattack.errors import InputError
from metricattack.tracking.association import switch_targets, untargeted_targets
from metricattack.tracking.crossings import Crossing, find_crossings, iou_matrix, kept_apart, match_labels, switched
from metricattack.tracking.embedding import box_corners
from metricattack.tracking.online import attacked_frames, switch_swaps
from metricattack.tracking.setting import TrackSetting
from metricattack.video.motfiles import FrameBoxes


def labelled(ids, boxes) -> FrameBoxes:
    """Boxes with identities (confidence 1)."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return FrameBoxes(boxes, np.ones(len(boxes)), np.asarray(ids))


def test_iou_by_hand():
    # (0,0,2,2) and (1,1,2,2): intersection 1, union 4 + 4 - 1 = 7
    assert iou_matrix([[0, 0, 2, 2]], [[1, 1, 2, 2], [5, 5, 1, 1]]).tolist() == [[1 / 7, 0.0]]


def test_labels_are_matched_one_to_one_by_iou():
    truth = labelled(np.array([7, 9]), np.array([[0, 0, 10, 20], [8, 0, 10, 20]], float))
    boxes = np.array([[8, 1, 10, 20], [0, 0, 10, 19], [50, 50, 5, 5], [1, 0, 10, 20]], float)
    # box 0 best fits 9, box 1 fits 7 exactly (IoU .95), box 3 also fits 7 (IoU .82) but 7 is taken; box 2 fits nothing
    assert match_labels(boxes, truth).tolist() == [9, 7, -1, -1]


def walk(frames: int, swap_at: int | None = None) -> tuple[list[FrameBoxes], list[FrameBoxes]]:
    """Two people crossing at frame 10 (A from the left, B from the right) and tracks of them: ids 1 and 2,
    exchanged from ``swap_at`` on."""
    truth, tracks = [], []
    for f in range(frames):
        a, b = [2.0 * f, 0, 10, 20], [40 - 2.0 * f, 0, 10, 20]
        truth.append(labelled(np.array([100, 200]), np.array([a, b])))
        ids = [2, 1] if swap_at is not None and f >= swap_at else [1, 2]
        tracks.append(labelled(np.array(ids), np.array([a, b])))
    return truth, tracks


def test_a_crossing_is_found_at_the_closest_approach_with_its_window():
    truth, _ = walk(21)
    (crossing,) = find_crossings(truth, frames_per_pair=4)
    assert (crossing.first, crossing.second, crossing.closest) == (100, 200, 10)
    assert crossing.frames == (8, 9, 10, 11)
    assert find_crossings(truth, frames_per_pair=14) == []  # fewer than 5 frames left after the window


def test_switched_and_kept_apart_read_the_tracks_around_the_window():
    truth, tracks = walk(21)
    crossing = Crossing(100, 200, 10, (8, 9, 10, 11))
    assert kept_apart(tracks, truth, crossing) and not switched(tracks, truth, crossing)
    _, swapped = walk(21, swap_at=10)
    assert switched(swapped, truth, crossing) and not kept_apart(swapped, truth, crossing)


def test_untargeted_targets_push_each_matched_detection_from_its_own_track():
    stored = {3: np.ones((2, 4)), 5: np.zeros((1, 4)), 8: np.zeros((0, 4))}
    targets = untargeted_targets(np.array([5, -1, 3, 8]), stored)
    assert targets.detections.tolist() == [0, 2]  # detection 1 unmatched, detection 3's track has no features
    assert targets.references.shape == (3, 4)  # rows of tracks 3, 3, 5
    assert targets.own_mask.tolist() == [[False, False, True], [True, True, False]]
    assert torch.equal(targets.impostor_mask, ~targets.own_mask)
    assert untargeted_targets(np.array([-1]), stored) is None


def test_switch_targets_pull_each_detection_toward_its_target_track():
    stored = {3: np.ones((2, 4)), 5: np.zeros((1, 4))}
    targets = switch_targets(stored, {0: (3, 5), 2: (5, 3), 1: (9, 3)})  # detection 1: track 9 has no features
    assert targets.detections.tolist() == [0, 2]
    assert targets.own_mask.tolist() == [[True, True, False], [False, False, True]]
    assert targets.target_mask.tolist() == [[False, False, True], [True, True, False]]
    assert switch_targets(stored, {0: (9, 3)}) is None


def test_a_pair_keeps_the_tracks_it_had_when_its_attack_began():
    crossings = [Crossing(100, 200, 5, (4, 5, 6))]
    anchors = {}
    labels = np.array([200, 100, -1])
    # frame 3 is outside the window; frame 4: both on one track, nothing anchored yet; frame 5: tracks 7 and 8
    assert switch_swaps(3, crossings, labels, np.array([7, 8, -1]), anchors) == {}
    assert switch_swaps(4, crossings, labels, np.array([7, 7, -1]), anchors) == {} and anchors == {}
    assert switch_swaps(5, crossings, labels, np.array([8, 7, -1]), anchors) == {1: (7, 8), 0: (8, 7)}
    # frame 6: the tracker has swapped them; the pulls stay toward the other's original track
    assert switch_swaps(6, crossings, labels, np.array([7, 8, -1]), anchors) == {1: (7, 8), 0: (8, 7)}


def test_box_corners_are_clipped_to_the_frame_and_never_empty():
    corners = box_corners(np.array([[-5.5, 2.2, 10, 10], [95.0, 45, 20, 20], [99.5, 49.5, 0.2, 0.2]]), 100, 50)
    assert corners.tolist() == [[0, 2, 5, 13], [95, 45, 100, 50], [99, 49, 100, 50]]


def test_budgets_choose_the_frames_attacked():
    crossings = [Crossing(1, 2, 5, (4, 5, 6)), Crossing(1, 3, 9, (9, 10))]
    assert attacked_frames(TrackSetting("clean"), 12, crossings) == set()
    assert attacked_frames(TrackSetting("untargeted"), 5, crossings) == {0, 1, 2, 3, 4}
    assert attacked_frames(TrackSetting("untargeted", budget="every:4"), 12, crossings) == {0, 4, 8}
    assert attacked_frames(TrackSetting("untargeted", budget="crossings"), 12, crossings) == {4, 5, 6, 9, 10}
    assert attacked_frames(TrackSetting("switch", frames_per_pair=3), 12, crossings) == {4, 5, 6, 9, 10}


@pytest.mark.parametrize(
    "options, message",
    [({"goal": "break"}, "tracking goal"), ({"goal": "untargeted", "budget": "every:0"}, "--budget"),
     ({"goal": "untargeted", "attack": "cw"}, "--attack"), ({"goal": "switch", "eps": -1}, "--eps"),
     ({"goal": "untargeted", "loss": "dlr"}, "--attack-loss"), ({"goal": "switch", "frames_per_pair": 0}, "--frames-per-pair")],
)  # fmt: skip
def test_bad_settings_are_refused_in_one_line(options, message):
    with pytest.raises(InputError, match=message):
        TrackSetting(**options)


def test_setting_keys_are_distinct():
    settings = [TrackSetting("clean"), TrackSetting("motion-only"), TrackSetting("untargeted"),
                TrackSetting("untargeted", budget="every:2"), TrackSetting("untargeted", budget="crossings"),
                TrackSetting("untargeted", loss="margin"), TrackSetting("switch"), TrackSetting("switch", frames_per_pair=5),
                TrackSetting("untargeted", source="zoo:osnet")]  # fmt: skip
    keys = [s.key for s in settings]
    assert len(set(keys)) == len(keys) and keys[2] == "untargeted-ifgsm-eps8-every"


def test_pairs_given_by_id_are_found_however_far_apart():
    # 3 passes close to 1 at frame 10; 2 comes nearest (90 px away) at frame 10 too
    truth = [labelled(np.array([1, 2, 3]), np.array([[0, 0, 10, 20], [90 + 5 * abs(f - 10), 0, 10, 20],
                                                     [2 + 3 * abs(f - 10), 0, 10, 20]], float)) for f in range(21)]  # fmt: skip
    assert [(c.first, c.second) for c in find_crossings(truth, 4)] == [(1, 3)]
    assert [(c.first, c.second) for c in find_crossings(truth, 4, pairs=[(2, 1)])] == [(1, 2)]
