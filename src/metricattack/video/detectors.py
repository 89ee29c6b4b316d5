"""Person detections from OpenCV's HOG people detector (Dalal & Triggs' linear SVM, no weights to download), cached per video.

OpenCV 5's main wheels dropped ``cv2.HOGDescriptor``; ``metricattack[tracking]`` installs OpenCV 4.
A detection's confidence is the logistic of the SVM's margin, so it lies in (0, 1) as trackers expect.
The cache holds a ``det.txt`` per (footage, detector settings) under the cache root's ``detections/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from metricattack.errors import InputError
from metricattack.system.cache import cache_root
from metricattack.video.motfiles import FrameBoxes, clip_boxes, read_detections, write_detections
from metricattack.video.sequence import Sequence


def hog_descriptor():
    """A ``cv2.HOGDescriptor`` with the default people detector; an OpenCV without HOG is a one-line InputError."""
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        raise InputError(
            f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it out of its main wheels); "
            "expected OpenCV 4: pip install 'metricattack[tracking]'"
        )
    descriptor = cv2.HOGDescriptor()
    descriptor.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return descriptor


@dataclass(frozen=True)
class HogDetector:
    """``detectMultiScale``'s settings; ``detect(frame)`` gives one frame's boxes."""

    win_stride: int = 8
    padding: int = 8
    scale: float = 1.05
    hit_threshold: float = 0.0
    min_confidence: float = 0.0

    def key(self) -> str:
        """A short name for these settings (part of the cache file's name)."""
        text = json.dumps({"detector": "hog", **asdict(self)}, sort_keys=True)
        return "hog-" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def detect(self, frame: np.ndarray, descriptor=None) -> FrameBoxes:
        """People in an (H,W,3) uint8 RGB frame: boxes x,y,w,h clipped to the frame, confidences in (0, 1)."""
        descriptor = descriptor if descriptor is not None else hog_descriptor()
        window_width, window_height = descriptor.winSize
        if frame.shape[0] < window_height or frame.shape[1] < window_width:  # no person fits (and OpenCV would assert)
            return FrameBoxes.empty()
        rects, weights = descriptor.detectMultiScale(
            np.ascontiguousarray(frame[:, :, ::-1]),  # OpenCV's channel order
            hitThreshold=self.hit_threshold,
            winStride=(self.win_stride, self.win_stride),
            padding=(self.padding, self.padding),
            scale=self.scale,
        )
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        confidences = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        boxes, inside = clip_boxes(boxes, (frame.shape[1], frame.shape[0]))
        keep = inside & (confidences >= self.min_confidence)
        return FrameBoxes(boxes[keep], confidences[keep], np.full(int(keep.sum()), -1, dtype=np.int64))


def detection_cache_path(sequence: Sequence, detector: HogDetector) -> Path:
    """Where the detections of ``sequence`` by ``detector`` are cached."""
    return cache_root() / "detections" / f"{sequence.content_hash()[:16]}-{detector.key()}.txt"


def cached_detections(
    sequence: Sequence, detector: HogDetector | None = None, progress: Callable[[int], None] | None = None
) -> list[FrameBoxes]:
    """The detector's boxes on every frame, read from the cache or computed and cached (``progress(i)`` after each frame)."""
    detector = detector or HogDetector()
    path = detection_cache_path(sequence, detector)
    if path.is_file():
        return read_detections(path, sequence.frame_count, sequence.size)
    descriptor = hog_descriptor()
    frames = []
    for index in range(sequence.frame_count):
        frames.append(detector.detect(sequence.frame(index), descriptor))
        if progress is not None:
            progress(index)
    if not any(len(frame) for frame in frames):
        raise InputError(f"{sequence.source}: the HOG detector found no person in {sequence.frame_count} frames")
    write_detections(path, frames)
    return read_detections(path, sequence.frame_count, sequence.size)  # the same rounding as every later run
