"""Market-1501: ``bounding_box_train/``, ``query/``, ``bounding_box_test/``, names like ``0002_c1s1_000451_03.jpg``."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.base import ReIDData
from metricattack.data.filenames import load_market_layout

NUM_CAMERAS = 6
MAX_PID = 1501  # torchreid asserts 0 <= pid <= 1501 (0: distractors)
RELEASE_FOLDER = "Market-1501-v15.09.15"


def load_market1501(root: Path) -> ReIDData:
    """Market-1501 at ``root`` (or ``root/Market-1501-v15.09.15``): cameras 1-6, junk dropped, distractors kept."""
    return load_market_layout(root, "market1501", NUM_CAMERAS, (RELEASE_FOLDER,), MAX_PID)
