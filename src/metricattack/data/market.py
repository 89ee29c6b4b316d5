"""Data sets in the Market-1501 folder layout: Market-1501, DukeMTMC-reID and CUHK03-NP."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.base import ReIDData
from metricattack.data.filenames import find_root, parse_folder


def load_market_layout(
    root: Path, name: str, num_cameras: int, subfolders: tuple[str, ...] = (), pid_range: tuple[int, int] | None = None
) -> ReIDData:
    """``bounding_box_train/``, ``query/``, ``bounding_box_test/`` with Market-style names (torchreid's rules:
    junk dropped everywhere, distractors kept in the gallery only)."""
    root = find_root(Path(root), subfolders, "query")
    return ReIDData(
        name=name,
        root=root,
        train=parse_folder(root / "bounding_box_train", num_cameras, keep_distractors=False, pid_range=pid_range),
        query=parse_folder(root / "query", num_cameras, keep_distractors=False, pid_range=pid_range),
        gallery=parse_folder(root / "bounding_box_test", num_cameras, keep_distractors=True, pid_range=pid_range),
    )


def load_market1501(root: Path) -> ReIDData:
    """Market-1501: cameras 1-6, names like 0002_c1s1_000451_03.jpg."""
    return load_market_layout(root, "market1501", 6, ("Market-1501-v15.09.15", "market1501"), (0, 1501))


def load_dukemtmc(root: Path) -> ReIDData:
    """DukeMTMC-reID: cameras 1-8, names like 0001_c2_f0046182.jpg."""
    return load_market_layout(root, "dukemtmc", 8, ("DukeMTMC-reID",))


def load_cuhk03(root: Path, kind: str) -> ReIDData:
    """CUHK03-NP, ``kind`` detected or labeled: Market-style folders under ``<root>/<kind>/``, cameras 1-2."""
    base = find_root(Path(root), ("cuhk03-np", "cuhk03"), kind) / kind
    return load_market_layout(base, f"cuhk03-{kind}", 2)
