"""Re-ID models: registry, checkpoints, foreign adapters and the bundled default model."""

from __future__ import annotations

from pathlib import Path

from metricattack.errors import InputError
from metricattack.models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from metricattack.models.foreign import FORMAT_NAMES, load_foreign
from metricattack.models.reid import ModelSpec, ReIDModel, build_model, model_names

DEFAULT_CHECKPOINT = Path(__file__).parent / "default" / "default.safetensors"
BUNDLED = {"default": DEFAULT_CHECKPOINT, "default-robust": DEFAULT_CHECKPOINT.with_name("default-robust.safetensors")}

__all__ = [
    "BUNDLED",
    "DEFAULT_CHECKPOINT",
    "FORMAT_NAMES",
    "ModelSpec",
    "ReIDModel",
    "build_model",
    "bundled_checkpoint",
    "load_checkpoint",
    "load_foreign",
    "load_model",
    "model_names",
    "read_metadata",
    "save_checkpoint",
]


def bundled_checkpoint(name: str | None) -> Path | None:
    """The weights of a model shipped with the package (``BUNDLED``), or None for any other name."""
    return BUNDLED.get(name) if name is not None else None


def load_model(name: str | None = None, weights: str | Path | None = None, fmt: str = "auto") -> tuple[ReIDModel, dict]:
    """Resolve the user's model choice into (model in eval mode, metadata).

    Nothing given: the bundled default. ``weights`` with a JSON beside it: our checkpoint.
    Other ``weights`` (torchreid, paper code): need ``name``. ``name`` alone: random weights.
    """
    if weights is None and name is None:
        return load_checkpoint(DEFAULT_CHECKPOINT)
    if weights is None and bundled_checkpoint(name):
        return load_checkpoint(BUNDLED[name])
    if weights is None:
        return build_model(name).eval(), {"spec": {"arch": name}, "weights": None}
    weights = Path(weights)
    ours = weights.suffix in (".safetensors", ".json", "") and weights.with_suffix(".json").is_file()
    if ours and fmt == "auto":
        model, meta = load_checkpoint(weights)
        if name is not None and name != model.spec.arch:
            raise InputError(f"--model {name} does not match {weights}, which holds a {model.spec.arch}")
        return model, meta
    if name is None:
        raise InputError(f"--weights {weights}: a foreign checkpoint needs --model to say its architecture")
    model = load_foreign(weights, name, fmt)
    return model, {"spec": model.spec.to_dict(), "weights": str(weights)}
