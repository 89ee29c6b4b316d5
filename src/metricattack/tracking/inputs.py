"""What a tracking run reads: the sequence (the bundled scene, a video, a folder of frames or a MOTChallenge
folder), cut to its first frames if asked, and its detections (the sequence's det.txt, a det.txt given,
or OpenCV's HOG people detector, cached per video)."""

from __future__ import annotations

import copy

from metricattack.data.synthetic.scene import SceneConfig
from metricattack.data.synthetic.scene_render import cached_scene
from metricattack.errors import InputError
from metricattack.video.detectors import cached_detections
from metricattack.video.motfiles import GroundTruth, read_detections
from metricattack.video.sequence import Sequence, open_sequence

DETECTORS = ("auto", "file", "hog")


def first_frames(sequence: Sequence, count: int | None) -> Sequence:
    """The sequence cut to its first ``count`` frames (None: whole), with its detections and ground truth."""
    if count is None or count >= sequence.frame_count:
        return sequence
    cut = copy.copy(sequence)
    cut.frame_count = count
    if sequence.detections is not None:
        cut.detections = sequence.detections[:count]
    if sequence.ground_truth is not None:
        cut.ground_truth = GroundTruth(sequence.ground_truth.frames[:count], sequence.ground_truth.distractors[:count])
    return cut


def load_sequence(
    path: str | None, detections: str | None, detector: str, frames: int | None, progress: bool,
    scene_seed: int | None = None,
) -> Sequence:
    """The sequence with its detections in ``sequence.detections``: ``detector`` ``file`` reads ``detections``
    (or the sequence's own det.txt), ``hog`` runs the HOG detector, ``auto`` takes the file when there is one.
    Without ``path``, the bundled scene, or with ``scene_seed`` the same scene generator's scene of that seed."""
    if detector not in DETECTORS:
        raise InputError(f"--detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if detections is not None and detector == "hog":
        raise InputError("--detections names a det.txt: it does not combine with --detector hog")
    if scene_seed is not None and (path is not None or scene_seed < 0):
        given = f"--sequence {path}" if path is not None else f"{scene_seed}"
        raise InputError(f"--scene-seed: expected a seed >= 0 of the bundled scene's generator, without --sequence; got {given}")
    seed = scene_seed or 0  # seed 0 is the bundled scene
    sequence = open_sequence(path if path is not None else cached_scene(SceneConfig(seed=seed), progress=progress))
    if path is None:
        sequence.name = f"bundled scene {sequence.name}" if seed == 0 else f"scene of seed {seed} {sequence.name}"
    if detections is not None:
        sequence.detections = read_detections(detections, sequence.frame_count, sequence.size)
    elif detector == "file" and sequence.detections is None:
        raise InputError(f"{sequence.source}: has no det/det.txt (give --detections FILE or --detector hog)")
    sequence = first_frames(sequence, frames)
    if detector == "hog" or sequence.detections is None:
        from tqdm.auto import tqdm

        with tqdm(total=sequence.frame_count, desc="HOG detections", unit="frame", disable=not progress, leave=False) as bar:
            sequence.detections = cached_detections(sequence, progress=lambda index: bar.update())
    if not any(len(frame) for frame in sequence.detections):
        raise InputError(f"{sequence.source}: no detections in the frames tracked")
    return sequence


def parse_pairs(values: list[str] | None) -> list[tuple[int, int]] | None:
    """``A,B`` identity pairs for the switch attack (None: chosen automatically)."""
    if not values:
        return None
    pairs = []
    for value in values:
        first, sep, second = value.partition(",")
        if not sep or not first.strip().lstrip("-").isdigit() or not second.strip().lstrip("-").isdigit() or first == second:
            raise InputError(f"--pairs: expected two different identities as A,B, got {value!r}")
        pairs.append((int(first), int(second)))
    return pairs


def describe(sequence: Sequence) -> str:
    """One line about the sequence for the run's start."""
    boxes = sum(len(frame) for frame in sequence.detections)
    truth = "with ground truth" if sequence.ground_truth is not None else "without ground truth (scored against the clean run)"
    return f"{sequence.name}: {sequence.frame_count} frames {sequence.size[0]}x{sequence.size[1]}, {boxes} detections, {truth}"

