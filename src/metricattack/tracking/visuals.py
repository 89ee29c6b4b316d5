"""What a tracking run shows a person: frames with boxes coloured by track, the clean and attacked runs side
by side as a video, and identity timelines (which track follows each person over time, switches marked)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from metricattack.system.atomic import atomic_write
from metricattack.tracking.crossings import match_labels
from metricattack.video.motfiles import FrameBoxes


def track_colour(track: int) -> tuple[int, int, int]:
    """A bright colour of its own for each track id (the same in every frame and run)."""
    rng = np.random.default_rng(int(track) * 7919 + 17)
    colour = rng.integers(60, 256, size=3)
    colour[int(track) % 3] = 255
    return tuple(int(c) for c in colour)


def annotate(frame: np.ndarray, tracks: FrameBoxes, title: str = "") -> np.ndarray:
    """The frame (H,W,3) uint8 with each track's box and id drawn in its colour."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    for track, (x, y, w, h) in zip(tracks.ids.tolist(), tracks.boxes.tolist()):
        colour = track_colour(track)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        draw.text((x + 2, y + 1), str(track), fill=colour)
    if title:
        draw.text((4, 4), title, fill=(255, 255, 255))
    return np.asarray(image)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two frames next to each other with a 4-pixel black gap."""
    gap = np.zeros((left.shape[0], 4, 3), dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


class VideoWriter:
    """Frames written to an .mp4 (OpenCV's mp4v codec) that appears at ``path`` only when closed whole."""

    def __init__(self, path: Path, fps: float) -> None:
        import cv2

        self.path = Path(path)
        self.temporary = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self.fps = float(fps)
        self.writer = None
        self._cv2 = cv2

    def write(self, frame: np.ndarray) -> None:
        """Append an RGB frame (H,W,3) uint8."""
        if self.writer is None:
            fourcc = self._cv2.VideoWriter_fourcc(*"mp4v")
            self.temporary.parent.mkdir(parents=True, exist_ok=True)
            self.writer = self._cv2.VideoWriter(str(self.temporary), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
        self.writer.write(np.ascontiguousarray(frame[..., ::-1]))

    def abort(self) -> None:
        """Drop the unfinished file."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self.temporary.unlink(missing_ok=True)

    def close(self) -> Path | None:
        """Finish the file and move it into place (None when no frame was written)."""
        if self.writer is None:
            return None
        self.writer.release()
        os.replace(self.temporary, self.path)
        return self.path


def identity_timeline(labelled: list[FrameBoxes], tracks: list[FrameBoxes]) -> dict[int, list[int]]:
    """Per identity, the track covering it in each frame (-1: none or absent)."""
    identities = sorted({int(i) for frame in labelled for i in frame.ids})
    timeline = {identity: [-1] * len(labelled) for identity in identities}
    for frame, (truth, output) in enumerate(zip(labelled, tracks)):
        labels = match_labels(output.boxes, truth)
        for track, identity in zip(output.ids.tolist(), labels.tolist()):
            if identity >= 0:
                timeline[identity][frame] = track
    return timeline


def timeline_figure(timelines: dict[str, dict[int, list[int]]], path: Path) -> Path:
    """One panel per run: a row per identity, coloured by the track that follows it, a black tick where the
    track changes from one track to another (an identity switch); written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    identities = sorted({i for timeline in timelines.values() for i in timeline})
    figure, axes = plt.subplots(len(timelines), 1, figsize=(10, 0.35 * len(identities) * len(timelines) + 1), squeeze=False)
    for axis, (name, timeline) in zip(axes[:, 0], timelines.items()):
        for row, identity in enumerate(identities):
            tracks = timeline.get(identity, [])
            previous = -1
            for frame, track in enumerate(tracks):
                if track >= 0:
                    axis.barh(row, 1, left=frame, color=np.array(track_colour(track)) / 255, height=0.8)
                    if previous >= 0 and track != previous:
                        axis.plot([frame, frame], [row - 0.5, row + 0.5], color="black", linewidth=2)
                    previous = track
        axis.set_yticks(range(len(identities)), [str(i) for i in identities])
        axis.set_title(name, fontsize=9)
        axis.set_ylabel("identity")
    axes[-1, 0].set_xlabel("frame")
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)
    return Path(path)
