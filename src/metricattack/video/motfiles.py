"""MOTChallenge text files: ``det.txt``, ``gt.txt``, tracker output and ``seqinfo.ini``, read checked and written atomically.

Frames and pixels are 1-based in the files and 0-based in memory (``frames[i]`` holds the boxes of the
file's frame ``i + 1``, and a box at ``x = 1`` in the file starts at column 0 of the image, as in the
MOTChallenge devkit). Boxes are ``x, y, w, h`` in pixels, ``(x, y)`` the top-left corner.

- ``det.txt``: ``frame, -1, x, y, w, h, conf[, -1, -1, -1]`` (7 to 10 columns). A detection partly
  outside the frame is clipped to it (its crop is what an embedder sees); one entirely outside is an
  error, like a non-positive width or height, a frame outside the sequence or a file with no rows.
- ``gt.txt`` (MOT16/17/20): ``frame, id, x, y, w, h, consider, class, visibility``. As TrackEval's
  MOT17 preprocessing: rows of class 1 (pedestrian) with ``consider`` 1 are the ground truth; rows of
  the distractor classes 2, 7, 8, 12 (person on vehicle, static person, distractor, reflection) are
  kept apart, so that tracker boxes matched to them are not counted as false positives; other rows
  (vehicles, occluders, ``consider`` 0) are dropped. A 6- to 8-column ``gt.txt`` counts every row.
  Ground-truth boxes are not clipped.
- tracker output: ``frame, id, x, y, w, h, conf, -1, -1, -1``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metricattack.errors import InputError
from metricattack.system.atomic import atomic_write_text, read_text

PEDESTRIAN = 1
DISTRACTOR_CLASSES = (2, 7, 8, 12)


@dataclass(frozen=True)
class FrameBoxes:
    """The boxes of one frame: ``boxes`` (N,4) x,y,w,h, ``confidences`` (N,), ``ids`` (N,) int (-1 for detections)."""

    boxes: np.ndarray
    confidences: np.ndarray
    ids: np.ndarray

    @classmethod
    def empty(cls) -> "FrameBoxes":
        """No boxes."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class GroundTruth:
    """Per frame: the pedestrians to track, and the distractor boxes (N,4) that excuse tracker boxes on them."""

    frames: list[FrameBoxes]
    distractors: list[np.ndarray]


def parse_rows(path: str | Path, min_columns: int, max_columns: int, expected: str) -> tuple[np.ndarray, np.ndarray]:
    """The comma-separated numbers of a MOTChallenge file as a (R, C) float array, and each row's line number."""
    text = read_text(path, str(path), expected)
    rows, lines, width = [], [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        where = f"{path}, line {number}"
        if not min_columns <= len(fields) <= max_columns:
            raise InputError(f"{where}: {len(fields)} columns (expected {expected})")
        if width is not None and len(fields) != width:
            raise InputError(f"{where}: {len(fields)} columns where earlier lines have {width} (expected {expected})")
        width = len(fields)
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise InputError(f"{where}: not a number in {line.strip()!r} (expected {expected})") from None
        if not np.all(np.isfinite(values)):
            raise InputError(f"{where}: not a finite number in {line.strip()!r} (expected {expected})")
        rows.append(values)
        lines.append(number)
    return np.array(rows, dtype=np.float64).reshape(len(rows), width or min_columns), np.array(lines, dtype=np.int64)


def _check_rows(path, rows: np.ndarray, lines: np.ndarray, frame_count: int, expected: str) -> np.ndarray:
    """The rows' 0-based frame indices; a frame outside 1..frame_count or a non-positive size names its line."""
    frames = rows[:, 0]
    bad = np.flatnonzero((frames != np.round(frames)) | (frames < 1) | (frames > frame_count))
    if len(bad):
        raise InputError(f"{path}, line {lines[bad[0]]}: frame {rows[bad[0], 0]:g} is not in 1..{frame_count} (expected {expected})")
    bad = np.flatnonzero((rows[:, 4] <= 0) | (rows[:, 5] <= 0))
    if len(bad):
        raise InputError(f"{path}, line {lines[bad[0]]}: width and height must be positive, got {rows[bad[0], 4]:g} x {rows[bad[0], 5]:g}")
    return frames.astype(np.int64) - 1


def clip_boxes(boxes: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N,4) x,y,w,h clipped to a (width, height) frame, and which of them overlap the frame at all (N,) bool."""
    width, height = size
    left, top = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height)
    right, bottom = np.clip(boxes[:, 0] + boxes[:, 2], 0, width), np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    inside = (right > left) & (bottom > top)
    return np.stack([left, top, right - left, bottom - top], axis=1), inside


def zero_based(boxes: np.ndarray) -> np.ndarray:
    """Boxes (N,4) of a file (1-based pixels) in memory's 0-based pixels."""
    return boxes - np.array([1.0, 1.0, 0.0, 0.0])


def _per_frame(frame_indices: np.ndarray, frame_count: int, boxes, confidences, ids) -> list[FrameBoxes]:
    order = np.argsort(frame_indices, kind="stable")
    starts = np.searchsorted(frame_indices[order], np.arange(frame_count + 1))
    return [
        FrameBoxes(boxes[order[a:b]], confidences[order[a:b]], ids[order[a:b]].astype(np.int64))
        for a, b in zip(starts[:-1], starts[1:])
    ]


DET_EXPECTED = "MOTChallenge detections: frame,-1,x,y,w,h,conf[,-1,-1,-1] per line, frames 1-based"


def read_detections(path: str | Path, frame_count: int, size: tuple[int, int]) -> list[FrameBoxes]:
    """A ``det.txt`` as one ``FrameBoxes`` per frame (ids -1), boxes clipped to the (width, height) frame."""
    rows, lines = parse_rows(path, 7, 10, DET_EXPECTED)
    if not len(rows):
        raise InputError(f"{path}: no detections (expected {DET_EXPECTED})")
    frames = _check_rows(path, rows, lines, frame_count, DET_EXPECTED)
    boxes, inside = clip_boxes(zero_based(rows[:, 2:6]), size)
    if not inside.all():
        row = int(np.flatnonzero(~inside)[0])
        raise InputError(
            f"{path}, line {lines[row]}: box {rows[row, 2]:g},{rows[row, 3]:g},{rows[row, 4]:g},{rows[row, 5]:g} "
            f"is entirely outside the {size[0]}x{size[1]} frame"
        )
    return _per_frame(frames, frame_count, boxes, rows[:, 6], np.full(len(rows), -1))


GT_EXPECTED = "MOTChallenge ground truth: frame,id,x,y,w,h[,consider,class,visibility] per line, frames 1-based"


def read_ground_truth(path: str | Path, frame_count: int) -> GroundTruth:
    """A ``gt.txt`` as the pedestrians per frame and the distractor boxes per frame (see the module's docstring)."""
    rows, lines = parse_rows(path, 6, 10, GT_EXPECTED)
    frames = _check_rows(path, rows, lines, frame_count, GT_EXPECTED)
    if rows.shape[1] >= 9:  # MOT16/17/20: consider flag and class
        consider, classes = rows[:, 6], rows[:, 7].astype(np.int64)
        keep = (consider != 0) & (classes == PEDESTRIAN)
        distractor = np.isin(classes, DISTRACTOR_CLASSES)
    else:
        keep, distractor = np.ones(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool)
    ones = np.ones(len(rows))
    boxes = zero_based(rows[:, 2:6])
    pedestrians = _per_frame(frames[keep], frame_count, boxes[keep], ones[keep], rows[keep, 1])
    others = _per_frame(frames[distractor], frame_count, boxes[distractor], ones[distractor], rows[distractor, 1])
    return GroundTruth(pedestrians, [frame.boxes for frame in others])


TRACKS_EXPECTED = "MOTChallenge tracks: frame,id,x,y,w,h,conf,-1,-1,-1 per line, frames 1-based"


def read_tracks(path: str | Path, frame_count: int) -> list[FrameBoxes]:
    """A tracker's output file as one ``FrameBoxes`` per frame (boxes as written, not clipped)."""
    rows, lines = parse_rows(path, 7, 10, TRACKS_EXPECTED)
    frames = _check_rows(path, rows, lines, frame_count, TRACKS_EXPECTED)
    return _per_frame(frames, frame_count, zero_based(rows[:, 2:6]), rows[:, 6], rows[:, 1])


def format_rows(frames: list[FrameBoxes], ground_truth: bool = False) -> str:
    """MOTChallenge lines for per-frame boxes: tracker/detection layout, or gt's ``consider=1, class=1, visibility=1``."""
    lines = []
    for index, frame in enumerate(frames):
        for (x, y, w, h), confidence, track_id in zip(frame.boxes, frame.confidences, frame.ids):
            tail = "1,1,1" if ground_truth else f"{confidence:.6g},-1,-1,-1"
            lines.append(f"{index + 1},{int(track_id)},{x + 1:.2f},{y + 1:.2f},{w:.2f},{h:.2f},{tail}\n")
    return "".join(lines)


def write_detections(path: str | Path, frames: list[FrameBoxes]) -> Path:
    """Write a ``det.txt`` (ids written as -1) atomically."""
    blank = [FrameBoxes(f.boxes, f.confidences, np.full(len(f), -1)) for f in frames]
    return atomic_write_text(path, format_rows(blank))


def write_tracks(path: str | Path, frames: list[FrameBoxes]) -> Path:
    """Write a tracker output file atomically."""
    return atomic_write_text(path, format_rows(frames))


def write_ground_truth(path: str | Path, frames: list[FrameBoxes]) -> Path:
    """Write a MOT17-layout ``gt.txt`` (every row a pedestrian to consider, fully visible) atomically."""
    return atomic_write_text(path, format_rows(frames, ground_truth=True))


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of a ``seqinfo.ini``."""

    name: str
    frame_count: int
    size: tuple[int, int]  # (width, height)
    fps: float
    image_dir: str = "img1"
    image_ext: str = ".jpg"


SEQINFO_EXPECTED = "a [Sequence] section with name, imDir, frameRate, seqLength, imWidth, imHeight, imExt"


def read_seqinfo(path: str | Path) -> SeqInfo:
    """A ``seqinfo.ini``, checked."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(read_text(path, str(path), SEQINFO_EXPECTED))
        section = parser["Sequence"]
        info = SeqInfo(
            name=section["name"],
            frame_count=int(section["seqLength"]),
            size=(int(section["imWidth"]), int(section["imHeight"])),
            fps=float(section.get("frameRate", "0")),
            image_dir=section.get("imDir", "img1"),
            image_ext=section.get("imExt", ".jpg"),
        )
    except (configparser.Error, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a valid seqinfo.ini ({exc}; expected {SEQINFO_EXPECTED})") from None
    if info.frame_count < 1 or min(info.size) < 1:
        raise InputError(f"{path}: seqLength, imWidth and imHeight must be positive")
    return info


def write_seqinfo(path: str | Path, info: SeqInfo) -> Path:
    """Write a ``seqinfo.ini`` atomically."""
    fps = f"{info.fps:g}"
    text = (
        f"[Sequence]\nname={info.name}\nimDir={info.image_dir}\nframeRate={fps}\nseqLength={info.frame_count}\n"
        f"imWidth={info.size[0]}\nimHeight={info.size[1]}\nimExt={info.image_ext}\n"
    )
    return atomic_write_text(path, text)
