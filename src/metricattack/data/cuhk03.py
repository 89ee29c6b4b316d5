"""CUHK03-NP (the 767/700 split as image folders): Market-1501 folders under ``detected/`` or ``labeled/``."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.base import ReIDData
from metricattack.data.filenames import find_root, load_market_layout
from metricattack.errors import InputError

NUM_CAMERAS = 2
RELEASE_FOLDER = "cuhk03-np"


def load_cuhk03(root: Path, kind: str) -> ReIDData:
    """CUHK03-NP boxes of ``kind`` (detected or labeled) under ``root/<kind>/`` or ``root/cuhk03-np/<kind>/``."""
    base = find_root(Path(root), (RELEASE_FOLDER,), kind) / kind
    if not base.is_dir():
        raise InputError(f"{base}: folder not found (expected CUHK03-NP's {kind}/ in the root or in {RELEASE_FOLDER}/)")
    return load_market_layout(base, f"cuhk03-{kind}", NUM_CAMERAS)


def load_cuhk03_detected(root: Path) -> ReIDData:
    """CUHK03-NP, detector boxes: names like ``0001_c1_1.png``, cameras 1-2."""
    return load_cuhk03(root, "detected")


def load_cuhk03_labeled(root: Path) -> ReIDData:
    """CUHK03-NP, hand-drawn boxes: names like ``0001_c1_1.png``, cameras 1-2."""
    return load_cuhk03(root, "labeled")
