"""A tracker run over a sequence, clean or attacked online: each frame's detections are embedded, the
frame attacked first when the setting says so (read from the tracker's state after the frames before,
themselves attacked), rounded to 8 bits as a video stores it, embedded again and given to the tracker.

White-box, the attacker reads the tracker's own state and model. By transfer (``source``), it keeps a
mirror: the same tracker fed with the source model's features of the same attacked frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from metricattack.attacks.steps import build_step_rule
from metricattack.evaluation.perceptibility import perturbation_sizes
from metricattack.tracking.association import attack_frame, metric_loss, neighbours, switch_targets, untargeted_targets
from metricattack.tracking.crossings import Crossing, match_labels
from metricattack.tracking.embedding import CropEmbedder, box_corners, frame_tensor, to_uint8
from metricattack.tracking.setting import TrackSetting, check_budget
from metricattack.video.motfiles import FrameBoxes
from metricattack.video.trackers import TrackedBox, Tracker

TRACKER_METRIC = ("cosine", False)  # DeepSORT and its successors compare cosine distances of the features


class Frames(Protocol):
    """What the loop reads of a sequence."""

    frame_count: int

    def frame(self, index: int) -> np.ndarray:
        """RGB (H,W,3) uint8 of a 0-based frame."""
        ...


@dataclass
class TrackingOutcome:
    """The tracks a run produced per frame, and what the attack cost."""

    tracks: list[FrameBoxes]  # per frame: the tracks output, ids and boxes (confidence 1)
    frames_attacked: int = 0
    boxes_attacked: int = 0
    gradient_passes: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    ssim: list[float] = field(default_factory=list)  # per attacked box: SSIM of its pixels against the clean ones
    attacked: dict[int, np.ndarray] = field(default_factory=dict)  # per attacked frame: the detections attacked


def as_frame_boxes(outputs: list[TrackedBox]) -> FrameBoxes:
    """A tracker's outputs of one frame as boxes with track ids (confidence 1)."""
    ids = np.array([output.track_id for output in outputs], dtype=np.int64)
    boxes = np.array([output.box for output in outputs], dtype=np.float64).reshape(-1, 4)
    return FrameBoxes(boxes, np.ones(len(ids)), ids)


def attacked_frames(setting: TrackSetting, count: int, crossings: Sequence[Crossing]) -> set[int]:
    """The frames the setting attacks."""
    if not setting.attacks:
        return set()
    stride = check_budget(setting.budget)
    if setting.goal == "switch" or stride == 0:
        return {frame for crossing in crossings for frame in crossing.frames}
    return set(range(0, count, stride))


def switch_swaps(
    frame: int, crossings: Sequence[Crossing], labels: np.ndarray, assigned: np.ndarray, anchors: dict[int, tuple[int, int]]
) -> dict[int, tuple[int, int]]:
    """Per attacked detection of this frame's crossings, (own track, target track): the two tracks the pair had
    when first seen in the window on two different tracks (``anchors``, filled here), exchanged."""
    swaps = {}
    for number, crossing in enumerate(crossings):
        if frame not in crossing.frames:
            continue
        first, second = np.flatnonzero(labels == crossing.first), np.flatnonzero(labels == crossing.second)
        if not len(first) or not len(second):
            continue
        first, second = int(first[0]), int(second[0])
        if number not in anchors and assigned[first] >= 0 and assigned[second] >= 0 and assigned[first] != assigned[second]:
            anchors[number] = (int(assigned[first]), int(assigned[second]))
        if number in anchors:
            track_first, track_second = anchors[number]
            swaps[first], swaps[second] = (track_first, track_second), (track_second, track_first)
    return swaps


def box_ssim(clean: torch.Tensor, attacked: torch.Tensor, corners: np.ndarray) -> list[float]:
    """SSIM of each box's pixels in the attacked frame against the clean frame (1,3,H,W)."""
    values = []
    for x1, y1, x2, y2 in corners.tolist():
        if min(x2 - x1, y2 - y1) >= 11:  # SSIM's window
            sizes = perturbation_sizes([(clean[..., y1:y2, x1:x2], attacked[..., y1:y2, x1:x2])])
            values.append(float(sizes["ssim"]))
    return values


def run_tracker(
    frames: Frames,
    detections: Sequence[FrameBoxes],
    make_tracker: Callable[[bool], Tracker],
    embedder: CropEmbedder,
    setting: TrackSetting,
    crossings: Sequence[Crossing] = (),
    labelled: Sequence[FrameBoxes] | None = None,
    source: CropEmbedder | None = None,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    on_frame: Callable[[int, np.ndarray, np.ndarray, FrameBoxes], None] | None = None,
) -> TrackingOutcome:
    """Track ``frames`` under ``setting``; ``labelled`` gives each frame's identities for the switch pairs;
    ``on_frame(index, clean frame, frame as the tracker got it, its tracks)`` sees every frame."""
    start = time.perf_counter()
    tracker = make_tracker(setting.goal != "motion-only")
    attacker_view = embedder if source is None else source
    mirror = None if source is None or not setting.attacks else make_tracker(True)
    view = tracker if mirror is None else mirror
    rule = None
    if setting.attacks:
        budget = setting.steps or steps
        options = {"steps": budget} if budget and setting.attack != "fgsm" else {}
        # eps 0 runs the whole attack with a ball too small to survive 8-bit rounding: the clean frames exactly
        rule = build_step_rule(setting.attack, max(setting.eps_fraction, 1e-9), **options)
        loss = metric_loss(setting.goal, setting.loss, *TRACKER_METRIC)
    chosen = attacked_frames(setting, frames.frame_count, crossings)
    generator = torch.Generator(device=embedder.device).manual_seed(seed)
    anchors: dict[int, tuple[int, int]] = {}  # crossing -> the tracks of its pair when the attack began
    view_tracks = FrameBoxes.empty()  # the attacker's view of the tracks output in the frame before
    outcome = TrackingOutcome(tracks=[])
    for index in tqdm(range(frames.frame_count), desc=setting.key, unit="frame", disable=not progress, leave=False):
        image = original = frames.frame(index)
        height, width = image.shape[:2]
        boxes, confidences = detections[index].boxes, detections[index].confidences
        corners = box_corners(boxes, width, height)
        tensor = frame_tensor(image, embedder.device)
        unchanged = None  # the attacker's features of this frame while it is as read: not computed twice
        if index in chosen and len(boxes):
            view_features = unchanged = attacker_view.embed(tensor, corners)
            assigned = view.assign(boxes, confidences, view_features, image)
            if setting.goal == "switch":
                labels = match_labels(boxes, labelled[index]) if labelled is not None else np.full(len(boxes), -1)
                targets = switch_targets(view.stored_features(), switch_swaps(index, crossings, labels, assigned, anchors))
            else:
                near = None
                if setting.loss == "neighbour":
                    near = neighbours(boxes, assigned, view_tracks)
                targets = untargeted_targets(assigned, view.stored_features(), near)
            if targets is not None:
                adversarial, counts = attack_frame(tensor, corners, targets, attacker_view, loss, rule, generator)
                image = to_uint8(adversarial)
                attacked = frame_tensor(image, embedder.device)
                outcome.ssim += box_ssim(tensor, attacked, corners[targets.detections])
                tensor, unchanged = attacked, None
                outcome.attacked[index] = targets.detections
                outcome.frames_attacked += 1
                outcome.boxes_attacked += len(targets.detections)
                outcome.gradient_passes += counts["gradient_passes"]
                outcome.forward_passes += counts["forward_passes"]
        def features_of(model: CropEmbedder) -> np.ndarray:
            return unchanged if unchanged is not None and model is attacker_view else model.embed(tensor, corners)

        outputs = tracker.update(boxes, confidences, features_of(embedder), image)
        outcome.tracks.append(as_frame_boxes(outputs))
        view_tracks = outcome.tracks[-1]
        if mirror is not None:
            view_tracks = as_frame_boxes(mirror.update(boxes, confidences, features_of(source), image))
        if on_frame is not None:
            on_frame(index, original, image, outcome.tracks[-1])
    outcome.seconds = time.perf_counter() - start
    return outcome
