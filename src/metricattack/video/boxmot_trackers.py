"""boxmot's StrongSORT, BoT-SORT and Deep OC-SORT, fed with outside embeddings (``metricattack[boxmot]``).

Detections go in as boxmot's ``Detections`` (xyxy boxes, scores, class 0, embeddings) with the
frame as a ``Frame`` (RGB, channels first); the output ``Tracks`` carry each row's detection index.
What each compares a detection's embedding to (``stored_features``):

- StrongSORT: the nearest-neighbour gallery ``metric.samples[id]`` of each confirmed track (as DeepSORT);
- BoT-SORT: each active or lost track's exponential moving average ``smooth_feat`` (one row);
- Deep OC-SORT: each active track's moving average ``get_emb()`` (one row).

``appearance=False`` uses the library's own ``use_embeddings=False`` for BoT-SORT and Deep OC-SORT,
and for StrongSORT, which has no switch, one constant unit embedding for every detection.
``assign`` runs ``update`` on a deep copy and reads the rows of tracks that existed before.
"""

from __future__ import annotations

import copy

import numpy as np

from metricattack.errors import InputError, first_line
from metricattack.video.trackers import TrackedBox, check_inputs, constant_embeddings

KINDS = {
    "strongsort": ("boxmot.trackers.box.strongsort.tracker", "StrongSort"),
    "botsort": ("boxmot.trackers.box.botsort.tracker", "BotSort"),
    "deepocsort": ("boxmot.trackers.box.deepocsort.tracker", "DeepOcSort"),
}


class BoxmotTracker:
    """One of boxmot's appearance trackers behind the ``Tracker`` protocol; ``params`` go to its constructor."""

    def __init__(self, kind: str, appearance: bool = True, **params) -> None:
        import importlib

        module_name, class_name = KINDS[kind]
        try:
            tracker_class = getattr(importlib.import_module(module_name), class_name)
        except ImportError as exc:
            raise InputError(f"tracker {kind} needs boxmot ({first_line(exc)}): pip install 'metricattack[boxmot]'") from None
        self.kind, self.appearance = kind, appearance
        switch = {} if appearance or kind == "strongsort" else {"use_embeddings": False}
        self._tracker = tracker_class(device="cpu", half=False, **switch, **params)
        self._frame_number = 0

    def _step(self, tracker, boxes, confidences, embeddings, frame):
        import torch
        from boxmot.structures.detections import Detections
        from boxmot.structures.frame import Frame
        from boxmot.structures.geometry import Boxes

        boxes, confidences, embeddings = check_inputs(boxes, confidences, embeddings, frame)
        if not self.appearance and self.kind == "strongsort":
            embeddings = constant_embeddings(len(boxes), embeddings.shape[1])
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1).astype(np.float32)
        sample = f"frame{self._frame_number}"
        detections = Detections(
            Boxes(torch.from_numpy(xyxy)),
            torch.from_numpy(np.clip(confidences, 0.0, 1.0).astype(np.float32)),
            torch.zeros(len(boxes), dtype=torch.int64),
            sample,
            embeddings=torch.from_numpy(np.ascontiguousarray(embeddings)),
        )
        image = torch.from_numpy(np.array(frame, copy=True)).permute(2, 0, 1).contiguous()
        return tracker.update(detections, Frame(image, sample))

    def update(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> list[TrackedBox]:
        """Advance one frame; the tracks output for it."""
        tracks = self._step(self._tracker, boxes, confidences, embeddings, frame)
        self._frame_number += 1
        xyxy = tracks.geometry.values.numpy().astype(np.float64)
        return [
            TrackedBox(int(track_id), np.concatenate([box[:2], box[2:] - box[:2]]), int(index))
            for track_id, box, index in zip(tracks.track_ids.tolist(), xyxy, tracks.detection_indices.tolist())
        ]

    def _live_tracks(self) -> list:
        if self.kind == "strongsort":
            return [track for track in self._tracker.tracks if track.is_confirmed()]
        if self.kind == "botsort":
            return list(self._tracker.active_tracks) + list(self._tracker.lost_stracks)
        return list(self._tracker.active_tracks)

    def stored_features(self) -> dict[int, np.ndarray]:
        """Per live track id, the (K,D) features boxmot compares detections to (see the module's docstring)."""
        features = {}
        for track in self._live_tracks():
            if self.kind == "strongsort":
                stored = self._tracker.metric.samples.get(track.id)
            else:
                stored = track.smooth_feat if self.kind == "botsort" else track.get_emb()
            if stored is not None and len(stored):
                features[int(track.id)] = np.atleast_2d(np.asarray(stored, dtype=np.float32))
        return features

    def assign(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """(N,) the existing track each detection would be matched to (-1: none), on a copy of the state."""
        trial = copy.deepcopy(self._tracker)
        before = {int(track.id) for track in list(trial.active_tracks) + list(getattr(trial, "lost_stracks", []))}
        tracks = self._step(trial, boxes, confidences, embeddings, frame)
        assigned = np.full(len(np.asarray(boxes).reshape(-1, 4)), -1, dtype=np.int64)
        for track_id, index in zip(tracks.track_ids.tolist(), tracks.detection_indices.tolist()):
            if index >= 0 and int(track_id) in before:
                assigned[int(index)] = int(track_id)
        return assigned
