"""Tracking metrics through TrackEval (``trackeval``): HOTA, DetA, AssA (HOTA's), MOTA and ID switches (CLEAR), IDF1 (Identity).

The input is in memory, in MOTChallenge conventions: per frame, ground-truth and tracker boxes x,y,w,h
with their ids. Similarity is box IoU (TrackEval's own), a match needs IoU >= 0.5 (HOTA averages
over its thresholds 0.05..0.95). As TrackEval's MOT17 preprocessing, tracker boxes matched (Hungarian,
IoU >= 0.5, jointly with the pedestrians) to a distractor box are removed before scoring.
"""

from __future__ import annotations

import numpy as np

from metricattack.video.motfiles import FrameBoxes


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids mapped to 0..K-1 (TrackEval's convention) and K."""
    unique = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *ids_per_frame]))
    return [np.searchsorted(unique, ids).astype(int) for ids in ids_per_frame], len(unique)


def _without_distractor_matches(iou, gt: FrameBoxes, tracks: FrameBoxes, distractors: np.ndarray) -> np.ndarray:
    """Which tracker boxes to keep: not matched, jointly with the pedestrians, to a distractor box."""
    from scipy.optimize import linear_sum_assignment

    keep = np.ones(len(tracks), dtype=bool)
    if not len(distractors) or not len(tracks):
        return keep
    scores = iou(np.concatenate([gt.boxes, distractors]), tracks.boxes)
    scores[scores < 0.5 - np.finfo("float").eps] = 0
    rows, cols = linear_sum_assignment(-scores)
    matched = scores[rows, cols] > np.finfo("float").eps
    keep[cols[matched & (rows >= len(gt))]] = False
    return keep


def tracking_metrics(
    ground_truth: list[FrameBoxes], tracks: list[FrameBoxes], distractors: list[np.ndarray] | None = None
) -> dict[str, float | int]:
    """HOTA, DetA, AssA, IDF1, MOTA, MOTP, precision and recall as fractions (MOTA can go below 0), and the count ``idsw``.

    ``ground_truth`` and ``tracks`` hold one ``FrameBoxes`` per frame (same length; ids are any
    integers); ``distractors`` optionally one (M,4) array per frame.
    """
    from trackeval.datasets._base_dataset import _BaseDataset
    from trackeval.metrics import CLEAR, HOTA, Identity

    if len(ground_truth) != len(tracks):
        raise ValueError(f"ground truth has {len(ground_truth)} frames, the tracks {len(tracks)}")
    iou = _BaseDataset._calculate_box_ious
    kept = [
        frame if distractors is None else _filtered(frame, _without_distractor_matches(iou, gt, frame, distractors[t]))
        for t, (gt, frame) in enumerate(zip(ground_truth, tracks))
    ]
    gt_ids, gt_count = _relabel([frame.ids for frame in ground_truth])
    tracker_ids, tracker_count = _relabel([frame.ids for frame in kept])
    data = {
        "num_timesteps": len(ground_truth),
        "num_gt_ids": gt_count,
        "num_tracker_ids": tracker_count,
        "num_gt_dets": sum(len(frame) for frame in ground_truth),
        "num_tracker_dets": sum(len(frame) for frame in kept),
        "gt_ids": gt_ids,
        "tracker_ids": tracker_ids,
        "similarity_scores": [iou(gt.boxes, frame.boxes) for gt, frame in zip(ground_truth, kept)],
    }
    hota = HOTA().eval_sequence(data)
    clear = CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
    identity = Identity({"PRINT_CONFIG": False}).eval_sequence(data)
    return {
        "hota": float(np.mean(hota["HOTA"])),
        "deta": float(np.mean(hota["DetA"])),
        "assa": float(np.mean(hota["AssA"])),
        "idf1": float(identity["IDF1"]),
        "mota": float(clear["MOTA"]),
        "motp": float(clear["MOTP"]),
        "precision": float(clear["CLR_Pr"]),
        "recall": float(clear["CLR_Re"]),
        "idsw": int(clear["IDSW"]),
    }


def _filtered(frame: FrameBoxes, keep: np.ndarray) -> FrameBoxes:
    return FrameBoxes(frame.boxes[keep], frame.confidences[keep], frame.ids[keep])
