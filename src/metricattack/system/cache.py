"""Where generated data and trained models are cached between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$METRICATTACK_CACHE``, else ``$XDG_CACHE_HOME/metricattack``, else ``~/.cache/metricattack``."""
    if os.environ.get("METRICATTACK_CACHE"):
        return Path(os.environ["METRICATTACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metricattack"
