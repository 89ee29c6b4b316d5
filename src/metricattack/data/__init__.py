"""Re-ID data sets: a registry of formats, each parsed into (path, pid, camid) lists per split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from metricattack.data.base import ImageDataset, ReIDData, Sample
from metricattack.data.folder import load_folder
from metricattack.data.market import load_cuhk03, load_dukemtmc, load_market1501
from metricattack.data.msmt17 import load_msmt17
from metricattack.errors import InputError

DATASETS: dict[str, Callable[..., ReIDData]] = {
    "market1501": load_market1501,
    "dukemtmc": load_dukemtmc,
    "msmt17": load_msmt17,
    "cuhk03-detected": lambda root: load_cuhk03(root, "detected"),
    "cuhk03-labeled": lambda root: load_cuhk03(root, "labeled"),
    "folder": load_folder,
}

__all__ = ["DATASETS", "ImageDataset", "ReIDData", "Sample", "dataset_names", "load_dataset"]


def dataset_names() -> list[str]:
    """Names accepted by ``load_dataset``."""
    return list(DATASETS)


def load_dataset(name: str, root: str | Path, **options) -> ReIDData:
    """Parse the data set ``name`` at ``root``."""
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r} (expected one of {', '.join(DATASETS)})")
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: data root not found (expected the folder holding {name})")
    return DATASETS[name](root, **options)
