"""The synthetic tree for a configuration, generated once into the cache folder and reused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from metricattack.data.synthetic import writer
from metricattack.data.synthetic.config import SyntheticConfig
from metricattack.errors import InputError
from metricattack.system.cache import cache_root


def cached_folder(target: Path, marker: str, build: Callable[[Path], Path]) -> Path:
    """``target``, built by ``build(target)`` unless it holds ``marker`` already (if another process renames its
    folder onto ``target`` first, that one is used)."""
    if (target / marker).is_file():
        return target
    try:
        return build(target)
    except (InputError, OSError):
        if (target / marker).is_file():
            return target
        raise


def cached_synthetic(config: SyntheticConfig = SyntheticConfig(), progress: bool = True) -> Path:
    """The cached tree for ``config`` under ``cache_root()/synthetic/<key>``, generated on first use."""
    return cached_folder(cache_root() / "synthetic" / config.key, "synthetic.json", lambda target: writer.generate(target, config, progress))
