"""Market-1501-style parsing shared by Market-1501, DukeMTMC-reID, CUHK03-NP and the folder format.

As torchreid (``([-\\d]+)_c(\\d)``): the pid and the camera come from the file name, pid -1 (junk)
is dropped, pid 0 (distractors) is kept in every split, cameras become 0-based. Stricter than
torchreid: only the base name is parsed (a parent folder named ``x1_c2`` cannot match), the name
must start with the pid (-1 or digits), the camera takes all its digits (``c12`` is 12, not 1),
and a name that does not parse or a camera out of range is an InputError, not an assert.
"""

from __future__ import annotations

import re
from pathlib import Path

from metricattack.data.base import ReIDData, Sample, list_images
from metricattack.errors import InputError

NAME_PATTERN = re.compile(r"^(-1|\d+)_c(\d+)")
EXPECTED_NAME = "<pid>_c<camera>_<anything>, like 0002_c1s1_000451_03.jpg"
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def parse_name(path: Path) -> tuple[int, int]:
    """(pid, 1-based camera) from the file's base name; an InputError naming the file if it does not parse."""
    match = NAME_PATTERN.match(path.name)
    if match is None:
        raise InputError(f"{path}: file name does not parse (expected {EXPECTED_NAME})")
    return int(match.group(1)), int(match.group(2))


def parse_folder(folder: Path, num_cameras: int | None = None, max_pid: int | None = None) -> list[Sample]:
    """Samples of the images in ``folder``: junk (pid -1) dropped, cameras 1..``num_cameras`` (any
    positive number if None) made 0-based, pids above ``max_pid`` refused."""
    samples = []
    for path in list_images(folder):
        pid, camera = parse_name(path)
        if pid == -1:
            continue
        if camera < 1 or (num_cameras is not None and camera > num_cameras):
            expected = "a camera number >= 1" if num_cameras is None else f"1-{num_cameras}"
            raise InputError(f"{path}: camera {camera} out of range (expected {expected})")
        if max_pid is not None and pid > max_pid:
            raise InputError(f"{path}: person id {pid} out of range (expected 0-{max_pid}, or -1 for junk)")
        samples.append(Sample(str(path), pid, camera - 1))
    return samples


def find_root(root: Path, subfolders: tuple[str, ...], required: str) -> Path:
    """The first of ``root/<subfolder>`` (as torchreid, a release folder is preferred) and ``root``
    that holds the folder ``required``; ``root`` if none does (later errors then name it)."""
    for candidate in (*(root / name for name in subfolders), root):
        if (candidate / required).is_dir():
            return candidate
    return root


def load_market_layout(
    root: Path, name: str, num_cameras: int, subfolders: tuple[str, ...] = (), max_pid: int | None = None
) -> ReIDData:
    """``bounding_box_train/``, ``query/``, ``bounding_box_test/`` under ``root`` (or one of its
    ``subfolders``), every split parsed with ``parse_folder``; train pids are not relabelled."""
    root = find_root(Path(root), subfolders, MARKET_FOLDERS["query"])
    splits = {split: parse_folder(root / folder, num_cameras, max_pid) for split, folder in MARKET_FOLDERS.items()}
    return ReIDData(name=name, root=root, **splits)
