"""Resolve what the user named (data set, model references) into loaded objects, with the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from metricattack.data import dataset_names, load_dataset
from metricattack.data.base import ReIDData
from metricattack.data.synthetic import SyntheticConfig, cached_synthetic
from metricattack.errors import InputError
from metricattack.experiment.setting import NamedModel
from metricattack.models.references import parse_reference
from metricattack.models.zoo import load_zoo_model

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


def model_from_reference(reference: str | Mapping, where: str = "model reference") -> NamedModel:
    """A model from a reference (``default``, a checkpoint, ``ARCH:PATH``, ``torchreid:NAME``, ``python:...``,
    ``torchscript:FILE``, ``fastreid:FILE``, or a mapping with options; see ``models.references``), or
    ``zoo:NAME`` (a zoo model on disk; ``training.zoo.obtain_zoo_model`` trains a missing one)."""
    if isinstance(reference, str) and reference.startswith("zoo:"):
        name = reference[len("zoo:"):]
        return NamedModel(name, load_zoo_model(name)[0])
    parsed = parse_reference(reference, where)
    return NamedModel(parsed.display_name, parsed.load()[0])


def unique_names(models: list[NamedModel]) -> list[NamedModel]:
    """Suffix repeated names (two checkpoints both called model) so results stay distinguishable."""
    seen: dict[str, int] = {}
    renamed = []
    for named in models:
        count = seen.get(named.name, 0)
        seen[named.name] = count + 1
        renamed.append(named if count == 0 else NamedModel(f"{named.name}#{count + 1}", named.model))
    return renamed
