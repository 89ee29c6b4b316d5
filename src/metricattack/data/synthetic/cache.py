"""The synthetic tree for a configuration, generated once into the cache folder and reused."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.synthetic import writer
from metricattack.data.synthetic.config import SyntheticConfig
from metricattack.errors import InputError
from metricattack.system.cache import cache_root


def cached_synthetic(config: SyntheticConfig = SyntheticConfig(), progress: bool = True) -> Path:
    """The cached tree for ``config`` under ``cache_root()/synthetic/<key>``, generated on first use
    (if another process finishes it first, its tree is used)."""
    target = cache_root() / "synthetic" / config.key
    if (target / "synthetic.json").is_file():
        return target
    try:
        return writer.generate(target, config, progress)
    except (InputError, OSError):
        if (target / "synthetic.json").is_file():  # another process renamed its tree onto target first
            return target
        raise
