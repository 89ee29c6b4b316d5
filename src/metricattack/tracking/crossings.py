"""Pairs of people who come close (where a tracker may swap them), the frames a switch attack spends on
each pair, and whether their tracks switched.

Identities come from labelled boxes per frame (``FrameBoxes`` with ids): the ground truth where the
sequence has it, otherwise the clean run's own tracks. Boxes are ``x, y, w, h``; frames are 0-based.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from metricattack.video.motfiles import FrameBoxes

CLOSE = 0.5  # two people come close when their box centres are within this many box widths (their boxes overlap by half)
MATCH_IOU = 0.5  # a box covers an identity's box at this IoU or more (MOTChallenge's threshold)
SETTLE = 5  # frames before and after a window over which a pair's tracks are read


@dataclass(frozen=True)
class Crossing:
    """Two identities that come close, the frame they are closest, and the frames attacked for them."""

    first: int
    second: int
    closest: int
    frames: tuple[int, ...]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"ids": [self.first, self.second], "closest": self.closest, "frames": list(self.frames)}


def iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of every box of ``first`` (N,4) with every box of ``second`` (M,4), x y w h: (N,M)."""
    a, b = np.asarray(first, float).reshape(-1, 4)[:, None], np.asarray(second, float).reshape(-1, 4)[None]
    width = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_labels(boxes: np.ndarray, labelled: FrameBoxes, threshold: float = MATCH_IOU) -> np.ndarray:
    """The identity (N,) of each box, by greedy one-to-one IoU matching with the labelled boxes (-1: none)."""
    labels = np.full(len(boxes), -1, dtype=np.int64)
    if not len(boxes) or not len(labelled.ids):
        return labels
    iou = iou_matrix(boxes, labelled.boxes)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        row, col = divmod(int(flat), iou.shape[1])
        if iou[row, col] < threshold:
            break
        if labels[row] < 0 and not (labels == labelled.ids[col]).any():
            labels[row] = labelled.ids[col]
    return labels


def find_crossings(
    labelled: list[FrameBoxes],
    frames_per_pair: int,
    min_gap: float = CLOSE,
    pairs: list[tuple[int, int]] | None = None,
    detected: list[set[int]] | None = None,
) -> list[Crossing]:
    """Pairs of identities whose box centres come within ``min_gap`` box widths of each other (or the
    ``pairs`` given, however far apart), each with the ``frames_per_pair`` frames nearest its closest
    approach in which both are detected (``detected``: the identities with a detection per frame; default
    every labelled one), and with ``SETTLE`` labelled frames of both before and after them (so a switch can
    be read). One crossing per pair, at its closest approach; ordered by that frame."""
    wanted = None if pairs is None else {tuple(sorted((int(a), int(b)))) for a, b in pairs}
    if wanted is not None:
        min_gap = np.inf
    closest: dict[tuple[int, int], tuple[float, int]] = {}
    for frame, boxes in enumerate(labelled):
        centres = boxes.boxes[:, :2] + boxes.boxes[:, 2:] / 2
        for i in range(len(boxes.ids)):
            for j in range(i + 1, len(boxes.ids)):
                gap = np.linalg.norm(centres[i] - centres[j]) / ((boxes.boxes[i, 2] + boxes.boxes[j, 2]) / 2)
                pair = tuple(sorted((int(boxes.ids[i]), int(boxes.ids[j]))))
                if (wanted is None or pair in wanted) and gap < min_gap and gap < closest.get(pair, (np.inf, 0))[0]:
                    closest[pair] = (gap, frame)
    present = [set(boxes.ids.tolist()) for boxes in labelled]
    detected = present if detected is None else detected
    crossings = []
    for (first, second), (_, frame) in closest.items():
        both = [f for f in range(len(labelled)) if {first, second} <= present[f]]
        seen = sorted((f for f in both if {first, second} <= detected[f]), key=lambda f: (abs(f - frame), f))
        window = tuple(sorted(seen[:frames_per_pair]))
        before = [f for f in both if f < window[0]] if window else []
        after = [f for f in both if f > window[-1]] if window else []
        if window and len(before) >= SETTLE and len(after) >= SETTLE:
            crossings.append(Crossing(first, second, frame, window))
    return sorted(crossings, key=lambda c: (c.closest, c.first, c.second))


def covering_track(tracks: list[FrameBoxes], labelled: list[FrameBoxes], identity: int, frames: list[int]) -> int:
    """The track id that covers ``identity``'s box in most of ``frames`` (-1: none)."""
    votes = Counter()
    for frame in frames:
        truth = labelled[frame]
        rows = np.flatnonzero(truth.ids == identity)
        if not len(rows) or not len(tracks[frame].ids):
            continue
        labels = match_labels(tracks[frame].boxes, FrameBoxes(truth.boxes[rows], truth.confidences[rows], truth.ids[rows]))
        votes.update(tracks[frame].ids[labels == identity].tolist())
    return votes.most_common(1)[0][0] if votes else -1


def pair_tracks(tracks: list[FrameBoxes], labelled: list[FrameBoxes], crossing: Crossing) -> tuple[int, int, int, int]:
    """(first before, second before, first after, second after): the tracks covering the pair in the
    ``SETTLE`` frames where both are labelled before and after the attacked frames."""
    both = [f for f in range(len(labelled)) if {crossing.first, crossing.second} <= set(labelled[f].ids.tolist())]
    before = [f for f in both if f < crossing.frames[0]][-SETTLE:]
    after = [f for f in both if f > crossing.frames[-1]][:SETTLE]
    return (
        covering_track(tracks, labelled, crossing.first, before),
        covering_track(tracks, labelled, crossing.second, before),
        covering_track(tracks, labelled, crossing.first, after),
        covering_track(tracks, labelled, crossing.second, after),
    )


def kept_apart(tracks: list[FrameBoxes], labelled: list[FrameBoxes], crossing: Crossing) -> bool:
    """Whether each of the pair keeps its own track through the crossing (the clean run's test of a pair)."""
    first_before, second_before, first_after, second_after = pair_tracks(tracks, labelled, crossing)
    return first_before >= 0 and second_before >= 0 and first_before != second_before and (
        (first_after, second_after) == (first_before, second_before)
    )


def switched(tracks: list[FrameBoxes], labelled: list[FrameBoxes], crossing: Crossing) -> bool:
    """Whether the pair's identities switched: after the attacked frames one of them is covered by the
    track that covered the other before."""
    first_before, second_before, first_after, second_after = pair_tracks(tracks, labelled, crossing)
    if first_before < 0 or second_before < 0 or first_before == second_before:
        return False
    return first_after == second_before or second_after == first_before
