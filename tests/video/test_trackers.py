"""Tracker adapters: the registry, output rows, stored features, dry-run assignment, appearance off, determinism."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from metricattack.errors import InputError
from metricattack.video.registry import TRACKERS, build_tracker

FRAME = np.zeros((120, 160, 3), np.uint8)
EMBEDDINGS = np.eye(2, 8, dtype=np.float32)  # person 0 and person 1 look entirely different


def available(name: str) -> bool:
    return importlib.util.find_spec("deep_sort_realtime" if name == "deepsort" else "boxmot") is not None


NAMES = [pytest.param(name, marks=pytest.mark.skipif(not available(name), reason="library not installed")) for name in sorted(TRACKERS)]


def walk(tracker, frames: int = 6, embeddings: np.ndarray = EMBEDDINGS):
    """Two people walking towards each other, far apart; the output rows of every frame."""
    rows = []
    for t in range(frames):
        boxes = np.array([[10 + 4 * t, 20, 30, 60], [110 - 4 * t, 25, 30, 60]], float)
        rows.append(tracker.update(boxes, [0.9, 0.8], embeddings, FRAME))
    return rows


def as_tuples(rows):
    return [[(row.track_id, tuple(np.round(row.box, 6)), row.detection_index) for row in frame] for frame in rows]


def test_unknown_tracker_lists_the_valid_names():
    with pytest.raises(InputError, match=r"unknown tracker 'sort'; expected one of botsort, deepocsort, deepsort, strongsort"):
        build_tracker("sort")


@pytest.mark.parametrize("name", NAMES)
def test_two_people_keep_their_ids_and_runs_repeat(name):
    rows = walk(build_tracker(name))
    last = {row.detection_index: row for row in rows[-1]}
    assert sorted(last) == [0, 1] and last[0].track_id != last[1].track_id
    assert np.allclose(last[0].box, [30, 20, 30, 60], atol=2) and np.allclose(last[1].box, [90, 25, 30, 60], atol=2)
    ids = [{row.detection_index: row.track_id for row in frame} for frame in rows if len(frame) == 2]
    assert all(frame == ids[-1] for frame in ids)  # once output, a person keeps the id
    assert as_tuples(walk(build_tracker(name))) == as_tuples(rows)


@pytest.mark.parametrize("name", NAMES)
def test_stored_features_are_the_tracks_own_embeddings(name):
    tracker = build_tracker(name)
    rows = walk(tracker)
    stored = tracker.stored_features()
    owner = {row.track_id: row.detection_index for row in rows[-1]}
    assert set(stored) == set(owner)
    for track_id, features in stored.items():
        assert features.ndim == 2 and features.shape[1] == EMBEDDINGS.shape[1]
        own = EMBEDDINGS[owner[track_id]] / np.linalg.norm(EMBEDDINGS[owner[track_id]])
        rows_unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        assert np.allclose(rows_unit, own, atol=1e-6)  # every stored row is (a multiple of) this person's embedding


@pytest.mark.parametrize("name", NAMES)
def test_assign_follows_appearance_and_leaves_the_state_alone(name):
    # two people side by side, 4 px apart, inside each other's motion gate; then their embeddings trade places
    boxes = np.array([[60, 30, 30, 60], [64, 30, 30, 60]], float)
    results = {}
    for appearance in (True, False):
        tracker, twin = build_tracker(name, appearance=appearance), build_tracker(name, appearance=appearance)
        for _ in range(6):
            out = tracker.update(boxes, [0.9, 0.9], EMBEDDINGS, FRAME)
            twin.update(boxes, [0.9, 0.9], EMBEDDINGS, FRAME)
        ids = {row.detection_index: row.track_id for row in out}
        results[appearance] = tracker.assign(boxes, [0.9, 0.9], EMBEDDINGS[::-1], FRAME).tolist(), [ids[0], ids[1]]
        after = tracker.update(boxes, [0.9, 0.9], EMBEDDINGS, FRAME)
        assert as_tuples([after]) == as_tuples([twin.update(boxes, [0.9, 0.9], EMBEDDINGS, FRAME)])
    swapped, straight = results[True], results[False]
    assert swapped[0] == swapped[1][::-1]  # appearance on: each detection joins the track that looks like it
    assert straight[0] == straight[1]  # appearance off: the embeddings cannot swap them


@pytest.mark.parametrize("name", NAMES)
def test_appearance_off_ignores_the_embeddings(name):
    rng = np.random.default_rng(0)
    runs = [as_tuples(walk(build_tracker(name, appearance=False), embeddings=rng.normal(size=(2, 8)).astype(np.float32))) for _ in range(2)]
    assert runs[0] == runs[1]


def test_bad_tracker_inputs():
    pytest.importorskip("deep_sort_realtime")
    tracker = build_tracker("deepsort")
    with pytest.raises(ValueError, match=r"expected 2 confidences and embeddings"):
        tracker.update(np.zeros((2, 4)) + 5, [0.9], EMBEDDINGS, FRAME)
    with pytest.raises(ValueError, match=r"widths and heights must be positive"):
        tracker.update(np.array([[1, 1, 0, 5], [1, 1, 5, 5]], float), [0.9, 0.9], EMBEDDINGS, FRAME)
