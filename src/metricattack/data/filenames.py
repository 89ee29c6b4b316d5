"""Parse Market-1501-style folders: the pid and camera come from each file's base name."""

from __future__ import annotations

import re
from pathlib import Path

from metricattack.data.base import Sample, list_images
from metricattack.errors import InputError

MARKET_PATTERN = re.compile(r"^([-\d]+)_c(\d+)")


def parse_name(path: Path, pattern: re.Pattern = MARKET_PATTERN) -> tuple[int, int]:
    """(pid, 1-based camera) from the base name; an InputError naming the file if it does not parse."""
    match = pattern.match(path.name)
    if match is None:
        raise InputError(f"{path}: file name does not parse (expected <pid>_c<camera>_..., like 0002_c1s1_000451_03.jpg)")
    return int(match.group(1)), int(match.group(2))


def parse_folder(
    folder: Path, num_cameras: int | None, keep_distractors: bool, pid_range: tuple[int, int] | None = None
) -> list[Sample]:
    """Samples of one folder: junk (pid -1) dropped, distractors (pid 0) kept only if asked, cameras 0-based."""
    samples = []
    for path in list_images(folder):
        pid, camera = parse_name(path)
        if pid == -1 or (pid == 0 and not keep_distractors):
            continue
        if num_cameras is not None and not 1 <= camera <= num_cameras:
            raise InputError(f"{path}: camera {camera} out of range (expected 1-{num_cameras})")
        if pid_range is not None and not pid_range[0] <= pid <= pid_range[1]:
            raise InputError(f"{path}: person id {pid} out of range (expected {pid_range[0]}-{pid_range[1]})")
        samples.append(Sample(str(path), pid, camera - 1))
    return samples


def find_root(root: Path, subfolders: tuple[str, ...], required: str) -> Path:
    """``root`` itself or the first of its known subfolders that holds ``required``."""
    for candidate in (root, *(root / s for s in subfolders)):
        if (candidate / required).is_dir():
            return candidate
    return root
