"""The files a tracking run shows: per attack setting a side-by-side video (clean | attacked, boxes coloured
by track) and a few frames around the first crossing, and report.html with the table, identity timelines
and those frames."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image

from metricattack.system.atomic import atomic_write, atomic_write_text
from metricattack.tracking.crossings import Crossing
from metricattack.tracking.results import markdown_table
from metricattack.tracking.visuals import VideoWriter, annotate, identity_timeline, side_by_side, timeline_figure
from metricattack.video.motfiles import FrameBoxes, read_tracks

STILLS = 3  # frames shown around the first crossing: before, at its closest approach, after


def still_frames(crossings: list[Crossing], count: int) -> list[int]:
    """The frames shown as stills: two before the first crossing's attacked frames, its closest approach, two after."""
    if not crossings:
        return []
    first = crossings[0]
    return sorted({max(first.frames[0] - 2, 0), first.closest, min(first.frames[-1] + 2, count - 1)})


class FrameRecorder:
    """Collects an attack setting's frames as the tracker got them into ``videos/<key>.mp4`` (clean | attacked)
    and ``stills/<key>-<frame>.png``."""

    def __init__(self, out_dir: Path, key: str, fps: float, clean: list[FrameBoxes], crossings: list[Crossing]) -> None:
        self.out_dir = Path(out_dir)
        self.key = key
        self.clean = clean
        self.stills = set(still_frames(crossings, len(clean)))
        self.clean_frames: dict[int, np.ndarray] = {}
        try:
            self.video = VideoWriter(self.out_dir / "videos" / f"{key}.mp4", fps or 10.0)
        except ImportError:  # no OpenCV: stills only
            self.video = None

    def add(self, index: int, clean_frame: np.ndarray, attacked_frame: np.ndarray, tracks: FrameBoxes) -> None:
        """One frame: the clean frame with the clean run's tracks beside the attacked frame with this run's."""
        pair = side_by_side(annotate(clean_frame, self.clean[index], "clean"), annotate(attacked_frame, tracks, "attacked"))
        if self.video is not None:
            self.video.write(pair)
        if index in self.stills:
            path = self.out_dir / "stills" / f"{self.key}-{index:06d}.png"
            atomic_write(path, lambda temporary: Image.fromarray(pair).save(temporary, format="PNG"))

    def close(self, finished: bool = True) -> None:
        """Finish the video, or drop it when the run did not finish."""
        if self.video is not None:
            self.video.close() if finished else self.video.abort()


def write_report(out_dir: Path, record: dict, reference: list[FrameBoxes], clean: list[FrameBoxes], tracks_dir: Path, count: int) -> Path:
    """report.html: the results table, the identity timelines of every setting, the stills and videos."""
    out_dir = Path(out_dir)
    tracks = {"clean": clean}
    for row in record["results"]:
        path = Path(tracks_dir) / f"{row['setting']}.txt"
        if row["setting"] != "clean" and path.is_file():
            tracks[row["setting"]] = read_tracks(path, count) if path.stat().st_size else [FrameBoxes.empty()] * count
    timelines = {key: identity_timeline(reference, frames) for key, frames in tracks.items()}
    figure = timeline_figure(timelines, out_dir / "figures" / "timelines.png")
    parts = [f"<h1>Tracking: {html.escape(record.get('sequence', ''))}</h1>",
             f"<p>Metrics against {html.escape(record.get('against', ''))}; fractions in %.</p>",
             markdown_to_html(markdown_table(record["results"])),
             "<h2>Identity timelines</h2><p>A row per identity, coloured by the track that follows it; a black tick "
             "where it passes from one track to another (an identity switch).</p>",
             f'<img src="{figure.relative_to(out_dir).as_posix()}" alt="identity timelines">']  # fmt: skip
    for path in sorted((out_dir / "stills").glob("*.png")) if (out_dir / "stills").is_dir() else []:
        parts.append(f'<figure><img src="stills/{path.name}" width="100%"><figcaption>{html.escape(path.stem)}: '
                     "clean (left) and attacked (right)</figcaption></figure>")  # fmt: skip
    for path in sorted((out_dir / "videos").glob("*.mp4")) if (out_dir / "videos").is_dir() else []:
        parts.append(f'<p><a href="videos/{path.name}">{html.escape(path.name)}</a>: clean | attacked, side by side</p>')
    page = "<!doctype html><meta charset=utf-8><title>metricattack tracking</title>\n" + "\n".join(parts) + "\n"
    return atomic_write_text(out_dir / "report.html", page)


def markdown_to_html(table: str) -> str:
    """A Markdown table (as ``markdown_table`` writes it) as an HTML table."""
    lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line) + "</tr>" for line in lines[2:])
    return f"<table><tr>{head}</tr>{body}</table>"
