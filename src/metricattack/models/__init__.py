"""Re-ID models: registry, checkpoints, foreign adapters and the bundled default model."""

from __future__ import annotations

from pathlib import Path

from metricattack.errors import InputError
from metricattack.models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from metricattack.models.fastreid import load_fastreid
from metricattack.models.foreign import FORMAT_NAMES, load_foreign
from metricattack.models.onnx import load_onnx
from metricattack.models.options import ModelOptions
from metricattack.models.python_entry import load_python_model
from metricattack.models.reid import ModelSpec, ReIDModel, build_model, model_names
from metricattack.models.timm_zoo import load_timm
from metricattack.models.torchreid_zoo import load_torchreid
from metricattack.models.torchscript import load_torchscript
from metricattack.models.wrapped import WrappedModel

DEFAULT_CHECKPOINT = Path(__file__).parent / "default" / "default.safetensors"
BUNDLED = {"default": DEFAULT_CHECKPOINT, "default-robust": DEFAULT_CHECKPOINT.with_name("default-robust.safetensors")}

__all__ = [
    "BUNDLED",
    "DEFAULT_CHECKPOINT",
    "EXTERNAL_SOURCES",
    "FORMAT_NAMES",
    "ModelOptions",
    "ModelSpec",
    "ReIDModel",
    "WrappedModel",
    "build_model",
    "bundled_checkpoint",
    "load_checkpoint",
    "load_foreign",
    "load_model",
    "model_names",
    "read_metadata",
    "save_checkpoint",
]


# Models built outside our registry: ``--model PREFIX:TARGET`` -> loader(TARGET, weights, options).
EXTERNAL_SOURCES = {
    "torchreid": load_torchreid,  # torchreid:NAME, built by torchreid
    "python": load_python_model,  # python:PACKAGE.MODULE:FACTORY
    "torchscript": load_torchscript,  # torchscript:FILE.pt / FILE.pt2
    "fastreid": load_fastreid,  # fastreid:FILE (config.yaml beside it)
    "timm": load_timm,  # timm:NAME, built by timm
    "onnx": load_onnx,  # onnx:FILE.onnx, run by onnxruntime (gradients through onnx2torch)
}


def bundled_checkpoint(name: str | None) -> Path | None:
    """The weights of a model shipped with the package (``BUNDLED``), or None for any other name."""
    return BUNDLED.get(name) if name is not None else None


def load_model(
    name: str | None = None, weights: str | Path | None = None, fmt: str = "auto", options: ModelOptions | None = None
) -> tuple[ReIDModel | WrappedModel, dict]:
    """Resolve the user's model choice into (model in eval mode, metadata).

    Nothing given: the bundled default. ``name`` with a prefix of ``EXTERNAL_SOURCES``: that source.
    ``weights`` with a JSON beside it: our checkpoint. Other ``weights`` (torchreid, paper code):
    need ``name``. ``name`` alone: random weights. ``options`` replace the model's input size,
    mean/std, distance and normalisation.
    """
    overrides = (options or ModelOptions()).spec_values()
    prefix, sep, target = (name or "").partition(":")
    if sep and prefix in EXTERNAL_SOURCES:
        model = EXTERNAL_SOURCES[prefix](target, weights, options or ModelOptions())
        return model, {"spec": model.spec.to_dict(), "weights": None if weights is None else str(weights)}
    if weights is None and name is None:
        return load_checkpoint(DEFAULT_CHECKPOINT, **overrides)
    if weights is None and bundled_checkpoint(name):
        return load_checkpoint(BUNDLED[name], **overrides)
    if weights is None:
        model = build_model(name, **overrides).eval()
        return model, {"spec": model.spec.to_dict(), "weights": None}
    weights = Path(weights)
    if not weights.exists() and not weights.with_suffix(".json").is_file():
        raise InputError(f"{weights}: checkpoint not found")
    ours = weights.suffix in (".safetensors", ".json", "") and weights.with_suffix(".json").is_file()
    if ours and fmt == "auto":
        model, meta = load_checkpoint(weights, **overrides)
        if name is not None and name != model.spec.arch:
            raise InputError(f"--model {name} does not match {weights}, which holds a {model.spec.arch}")
        return model, meta
    if name is None:
        raise InputError(f"--weights {weights}: a foreign checkpoint needs --model to say its architecture")
    model = load_foreign(weights, name, fmt, **overrides)
    return model, {"spec": model.spec.to_dict(), "weights": str(weights)}
