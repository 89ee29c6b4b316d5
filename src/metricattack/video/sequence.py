"""A video sequence from a video file, a folder of frames or a MOTChallenge sequence folder.

Every source becomes a ``Sequence``: name, frame count, (width, height), fps, ``frame(i)`` as an
(H,W,3) uint8 RGB array (0-based), the detections of ``det/det.txt`` and the ground truth of
``gt/gt.txt`` when the folder has them, and a content hash (for caches keyed by the footage).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from metricattack.errors import InputError
from metricattack.video.motfiles import FrameBoxes, GroundTruth, read_detections, read_ground_truth, read_seqinfo

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXPECTED = "a video file OpenCV can read, a folder of frames, or a MOTChallenge sequence folder (img1/, seqinfo.ini)"


class Sequence:
    """The frames of one sequence with what is known about them; subclasses say where frames come from."""

    def __init__(self, name: str, frame_count: int, size: tuple[int, int], fps: float, source: Path) -> None:
        self.name = name
        self.frame_count = frame_count
        self.size = size  # (width, height)
        self.fps = fps
        self.source = source
        self.detections: list[FrameBoxes] | None = None
        self.ground_truth: GroundTruth | None = None

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as an (H,W,3) uint8 RGB array."""
        if not 0 <= index < self.frame_count:
            raise IndexError(f"{self.source}: frame {index} is not in 0..{self.frame_count - 1}")
        image = self._read(index)
        if image.shape[:2] != (self.size[1], self.size[0]):
            raise InputError(f"{self.source}: frame {index} is {image.shape[1]}x{image.shape[0]}, expected {self.size[0]}x{self.size[1]}")
        return image

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files the frames are read from, in order (hashed by ``content_hash``)."""
        raise NotImplementedError

    def content_hash(self) -> str:
        """SHA-256 of the frames' files (their bytes, in order)."""
        digest = hashlib.sha256()
        for path in self.files():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, frames={self.frame_count}, size={self.size}, fps={self.fps:g})"


class VideoSequence(Sequence):
    """A video file read through OpenCV; frames are decoded in order and seeking happens only when asked out of order."""

    def __init__(self, path: Path) -> None:
        import cv2

        capture = cv2.VideoCapture(str(path))
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise InputError(f"{path}: OpenCV cannot read it as a video (expected {VIDEO_EXPECTED})")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        super().__init__(path.stem, max(count, 1), (first.shape[1], first.shape[0]), fps, path)
        self._capture, self._next, self._first = capture, 1, first

    def _read(self, index: int) -> np.ndarray:
        import cv2

        if index == 0:
            image = self._first
        else:
            if index != self._next:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = self._capture.read()
            if not ok:
                raise InputError(f"{self.source}: cannot decode frame {index} of {self.frame_count}")
            self._next = index + 1
        return np.ascontiguousarray(image[:, :, ::-1])

    def files(self) -> list[Path]:
        return [self.source]


class FrameFolderSequence(Sequence):
    """Image files in a folder, in sorted name order."""

    def __init__(self, folder: Path, name: str | None = None, fps: float = 0.0, paths: list[Path] | None = None) -> None:
        paths = paths if paths is not None else sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) (expected {VIDEO_EXPECTED})")
        self._paths = paths
        first = self._load(paths[0])
        super().__init__(name or folder.name, len(paths), (first.shape[1], first.shape[0]), fps, folder)

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"{path}: cannot read the image ({exc})") from None

    def _read(self, index: int) -> np.ndarray:
        return self._load(self._paths[index])

    def files(self) -> list[Path]:
        return list(self._paths)


class MotSequence(FrameFolderSequence):
    """A MOTChallenge sequence folder: ``seqinfo.ini``, ``img1/``, and ``det/det.txt``, ``gt/gt.txt`` when present."""

    def __init__(self, folder: Path) -> None:
        info = read_seqinfo(folder / "seqinfo.ini")
        image_dir = folder / info.image_dir
        paths = [image_dir / f"{number:06d}{info.image_ext}" for number in range(1, info.frame_count + 1)]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise InputError(f"{missing[0]}: missing ({len(missing)} of the {info.frame_count} frames seqinfo.ini names)")
        super().__init__(folder, info.name, info.fps, paths)
        if self.size != info.size:
            raise InputError(f"{paths[0]}: {self.size[0]}x{self.size[1]}, but seqinfo.ini says {info.size[0]}x{info.size[1]}")
        if (folder / "det" / "det.txt").is_file():
            self.detections = read_detections(folder / "det" / "det.txt", self.frame_count, self.size)
        if (folder / "gt" / "gt.txt").is_file():
            self.ground_truth = read_ground_truth(folder / "gt" / "gt.txt", self.frame_count)


def open_sequence(path: str | Path, detections: str | Path | None = None) -> Sequence:
    """The sequence at ``path`` (video file, MOTChallenge folder or folder of frames), with ``detections`` (a det.txt) if given."""
    path = Path(path)
    if path.is_dir():
        sequence = MotSequence(path) if (path / "seqinfo.ini").is_file() else FrameFolderSequence(path)
    elif path.is_file():
        sequence = VideoSequence(path)
    else:
        raise InputError(f"{path}: not found (expected {VIDEO_EXPECTED})")
    if detections is not None:
        sequence.detections = read_detections(detections, sequence.frame_count, sequence.size)
    return sequence
