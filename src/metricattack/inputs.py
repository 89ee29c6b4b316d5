"""Resolve what the user named (data set, model references) into loaded objects, with the defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from metricattack.attacks.campaign import NamedModel
from metricattack.data import dataset_names, load_dataset
from metricattack.data.base import ReIDData
from metricattack.data.synthetic import SyntheticConfig, cached_synthetic
from metricattack.errors import InputError
from metricattack.models import load_model
from metricattack.runtime import choose_device
from metricattack.training.zoo import obtain_zoo_model

DEFAULT_DATA_NAME = "synthetic"


def load_data(dataset: str | None, root: str | Path | None, progress: bool = True) -> ReIDData:
    """The named data set at ``root``; with neither, the default synthetic data (generated once, cached)."""
    if root is None:
        if dataset not in (None, DEFAULT_DATA_NAME):
            raise InputError(f"--dataset {dataset} needs --data-root (the folder holding it)")
        return replace(load_dataset("market1501", cached_synthetic(SyntheticConfig(), progress)), name=DEFAULT_DATA_NAME)
    if dataset is None:
        raise InputError(f"--data-root {root} needs --dataset (one of {', '.join(dataset_names())})")
    return load_dataset(dataset, root)


def model_from_reference(reference: str, progress: bool = True) -> NamedModel:
    """A model from ``default``, ``zoo:NAME`` (trained on first use), a checkpoint path of ours, or ``ARCH:PATH``
    for a foreign checkpoint."""
    if reference == "default":
        return NamedModel("default", load_model()[0])
    if reference.startswith("zoo:"):
        name = reference[len("zoo:"):]
        return NamedModel(name, obtain_zoo_model(name, load_data(None, None, progress), choose_device(), progress)[0])
    arch, sep, path = reference.partition(":")
    if sep and not Path(reference).exists():
        return NamedModel(Path(path).stem, load_model(arch, path)[0])
    return NamedModel(Path(reference).stem, load_model(None, reference)[0])


def unique_names(models: list[NamedModel]) -> list[NamedModel]:
    """Suffix repeated names (two checkpoints both called model) so results stay distinguishable."""
    seen: dict[str, int] = {}
    renamed = []
    for named in models:
        count = seen.get(named.name, 0)
        seen[named.name] = count + 1
        renamed.append(named if count == 0 else NamedModel(f"{named.name}#{count + 1}", named.model))
    return renamed
