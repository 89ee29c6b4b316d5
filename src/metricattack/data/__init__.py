"""Re-ID data sets: a registry of formats, each parsed into (path, pid, camid) lists per split."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metricattack.data.base import ImageDataset, ReIDData, Sample
from metricattack.data.cuhk03 import load_cuhk03_detected, load_cuhk03_labeled
from metricattack.data.dukemtmc import load_dukemtmc
from metricattack.data.folder import load_folder
from metricattack.data.market1501 import load_market1501
from metricattack.data.msmt17 import load_msmt17
from metricattack.errors import InputError

# name -> loader(root, **options); options are keyword-only in use (msmt17: combine_val)
DATASETS: dict[str, Callable[..., ReIDData]] = {
    "market1501": load_market1501,
    "dukemtmc": load_dukemtmc,
    "msmt17": load_msmt17,
    "cuhk03-detected": load_cuhk03_detected,
    "cuhk03-labeled": load_cuhk03_labeled,
    "folder": load_folder,
}

__all__ = ["DATASETS", "ImageDataset", "ReIDData", "Sample", "dataset_names", "load_dataset"]


def dataset_names() -> list[str]:
    """Names accepted by ``load_dataset``."""
    return list(DATASETS)


def load_dataset(name: str, root: str | Path, **options: Any) -> ReIDData:
    """Parse the data set ``name`` at ``root``, passing ``options`` (e.g. ``combine_val=True`` for msmt17)."""
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r} (expected one of {', '.join(DATASETS)})")
    loader = DATASETS[name]
    accepted = list(inspect.signature(loader).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "none"
        raise InputError(f"data set {name} takes no option {', '.join(unknown)} (it takes: {takes})")
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{root}: data root not found (expected the folder holding {name})")
    return loader(root, **options)
