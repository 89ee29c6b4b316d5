"""The model zoo: diverse re-ID models trained on the default synthetic data, to transfer attacks between.

Each entry is an architecture with its training options (the ``metricattack train`` command line that
reproduces it is written by the CLI, ``cli.train.train_command``). Small models ship with the package (fp16
safetensors under ``models/zoo/``, the bundled default model for ``compact``); the others are
trained on first use by ``metricattack zoo`` and cached under ``cache_root()/zoo/<name>/``, like the
synthetic data. Training them is the job of ``training/zoo.py``; this module only knows names,
recipes and where the weights are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metricattack.system.cache import cache_root
from metricattack.errors import InputError
from metricattack.models import DEFAULT_CHECKPOINT
from metricattack.models.checkpoints import load_checkpoint
from metricattack.models.reid import ReIDModel

SHIPPED_DIR = Path(__file__).parent / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: its architecture and the training options that reproduce it."""

    name: str
    arch: str
    train_options: dict = field(default_factory=dict)  # TrainConfig fields other than the defaults
    model_options: dict = field(default_factory=dict)  # build_model options (input_size, last_stride)
    shipped: bool = False
    description: str = ""


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry("compact", "compact", {"epochs": 40, "lr": 3e-3, "seed": 0}, shipped=True,
                 description="the bundled default model: small residual CNN, softmax + triplet"),
        ZooEntry("compact_softmax", "compact", {"loss": "softmax", "epochs": 40, "lr": 3e-3, "seed": 1}, shipped=True,
                 description="the same CNN, another seed, softmax loss only"),
        ZooEntry("mobilenet_v3_small", "mobilenet_v3_small", {"epochs": 15, "lr": 3e-3, "seed": 2},
                 {"input_size": (128, 64)}, shipped=True, description="MobileNetV3-small at 128x64, softmax + triplet"),
        ZooEntry("resnet18", "resnet18", {"epochs": 8, "lr": 2e-3, "seed": 3}, {"input_size": (128, 64), "last_stride": 2},
                 description="ResNet-18 at 128x64, softmax + triplet (45 MB: trained on first use)"),
    )
}  # fmt: skip


def zoo_names() -> list[str]:
    """Names of the zoo's models."""
    return list(ZOO)


def zoo_entry(name: str) -> ZooEntry:
    """The zoo entry ``name``; an unknown name lists the known ones."""
    if name not in ZOO:
        raise InputError(f"unknown zoo model {name!r} (expected one of {', '.join(ZOO)})")
    return ZOO[name]


def zoo_checkpoint(name: str) -> Path:
    """Where the model's weights are (shipped) or go (cached after training); the file may not exist yet.
    ``compact`` is the bundled default model."""
    entry = zoo_entry(name)
    if name == "compact":
        return DEFAULT_CHECKPOINT
    shipped = SHIPPED_DIR / f"{name}.safetensors"
    if entry.shipped and shipped.is_file():
        return shipped
    return cache_root() / "zoo" / name / "model.safetensors"


def zoo_available(name: str) -> bool:
    """True when the model's weights are on disk (shipped or trained before)."""
    path = zoo_checkpoint(name)
    return path.is_file() and path.with_suffix(".json").is_file()


def load_zoo_model(name: str) -> tuple[ReIDModel, dict]:
    """Load a zoo model that is on disk (``training.zoo.obtain_zoo_model`` trains a missing one)."""
    if not zoo_available(name):
        raise InputError(f"zoo model {name!r} is not trained yet (metricattack zoo {name} trains it)")
    return load_checkpoint(zoo_checkpoint(name))
