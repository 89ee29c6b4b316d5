"""DukeMTMC-reID: Market-1501 folders, names like ``0001_c2_f0046182.jpg``, cameras 1-8."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.base import ReIDData
from metricattack.data.filenames import load_market_layout

NUM_CAMERAS = 8
RELEASE_FOLDER = "DukeMTMC-reID"


def load_dukemtmc(root: Path) -> ReIDData:
    """DukeMTMC-reID at ``root`` (or ``root/DukeMTMC-reID``): cameras 1-8."""
    return load_market_layout(root, "dukemtmc", NUM_CAMERAS, (RELEASE_FOLDER,))
