"""What a tracker adapter offers the tracker attack: its protocol, its output rows, and the checks of its inputs.

An adapter wraps a multi-object tracker that takes appearance features from outside. Per frame it
receives detection boxes (N,4) x,y,w,h in pixels, confidences (N,), embeddings (N,D) float32 and the
(H,W,3) uint8 RGB frame; it reports the tracks it outputs, shows the features each live track has
stored (the gallery a new detection is compared to) and can say, without changing its state, which
track each detection would join.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from metricattack.errors import InputError


class TrackedBox(NamedTuple):
    """One output track in one frame: its id, its box x,y,w,h and the detection it was updated with (-1: none)."""

    track_id: int
    box: np.ndarray
    detection_index: int


@runtime_checkable
class Tracker(Protocol):
    """A multi-object tracker fed with outside embeddings (see the module's docstring)."""

    appearance: bool

    def update(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> list[TrackedBox]:
        """Advance one frame; the tracks output for it."""
        ...

    def stored_features(self) -> dict[int, np.ndarray]:
        """Per live track id, the (K,D) features a new detection's embedding is compared to."""
        ...

    def assign(self, boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """(N,) the track id each detection would be matched to in this frame (-1: none), the state unchanged."""
        ...


def check_inputs(
    boxes: np.ndarray, confidences: np.ndarray, embeddings: np.ndarray, frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as float64 boxes (N,4), float64 confidences (N,), float32 embeddings (N,D), or a ValueError saying what is wrong."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    count = len(boxes)
    if embeddings.ndim != 2 or len(embeddings) != count or len(confidences) != count:
        raise ValueError(f"expected {count} confidences and embeddings (N, D), got {confidences.shape} and {embeddings.shape}")
    if count and (boxes[:, 2:] <= 0).any():
        raise ValueError("box widths and heights must be positive")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H,W,3) uint8 frame, got {frame.shape} {frame.dtype}")
    return boxes, confidences, embeddings


def constant_embeddings(count: int, dim: int) -> np.ndarray:
    """(count, dim) identical unit rows: every cosine distance between them is 0, so appearance cannot tell detections apart."""
    return np.full((count, max(dim, 1)), 1.0 / np.sqrt(max(dim, 1)), dtype=np.float32)


def check_name(name: str, names: list[str]) -> None:
    """An unknown tracker name is an InputError listing the valid ones."""
    if name not in names:
        raise InputError(f"unknown tracker {name!r}; expected one of {', '.join(names)}")
