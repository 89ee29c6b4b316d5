"""Model references: how ``--source-model`` / ``--target-model`` (and YAML) name a model with its options.

A reference is one of

- ``default``; a checkpoint of ours (``NAME.safetensors`` / ``NAME.json``); ``ARCH:PATH`` (a torchreid /
  paper checkpoint for one of our architectures);
- ``torchreid:NAME[:WEIGHTS]``, ``timm:NAME[:WEIGHTS]``, ``python:PACKAGE.MODULE:FACTORY[:WEIGHTS]``,
  ``torchscript:FILE``, ``fastreid:FILE``, ``onnx:FILE``;
- a mapping with the main model's option names — ``model``, ``weights``, ``weights_format``,
  ``input_size``, ``mean``, ``std``, ``distance``, ``normalize`` and an optional display ``name`` —
  given in the YAML config's lists, inline on the command line as ``'{model: ..., input_size: [256, 128]}'``,
  or as a ``.yaml`` / ``.yml`` file holding it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from metricattack.system.atomic import read_document
from metricattack.errors import InputError, first_line
from metricattack.models import EXTERNAL_SOURCES, ModelOptions, bundled_checkpoint, load_model
from metricattack.models.options import OPTION_KEYS

MAPPING_KEYS = ("name", "model", "weights", "weights_format") + OPTION_KEYS
TARGET_PARTS = {"torchreid": 1, "python": 2, "timm": 1}  # colon-separated parts naming the model; a further part is WEIGHTS
# where a model of an external source gets its weights when no weights file is given
BUILT_WEIGHTS = {"torchreid": "random weights", "python": "weights as built by the factory", "torchscript": "weights in the file",
                 "timm": "random weights", "fastreid": "weights in the file", "onnx": "weights in the file"}  # fmt: skip


@dataclass(frozen=True)
class ModelReference:
    """A model as the user named it: what to load, from where, with which stated options."""

    model: str | None = None
    weights: str | None = None
    weights_format: str = "auto"
    options: ModelOptions = field(default_factory=ModelOptions)
    name: str | None = None

    @property
    def display_name(self) -> str:
        """The name results are reported under: ``name``, else the weights' or file's stem, else the model."""
        if self.name:
            return self.name
        if self.model is None and self.weights is None:
            return "default"
        if self.weights is not None:
            return Path(self.weights).stem
        prefix, _, target = self.model.partition(":")
        if prefix in ("torchscript", "fastreid", "onnx"):
            return Path(target).stem
        return target.rpartition(":")[2] if prefix in EXTERNAL_SOURCES else self.model

    @property
    def weights_origin(self) -> str:
        """Where the loaded model's weights come from, for messages: the weights file, a bundled model, the source, or random."""
        if self.weights is not None:
            return str(self.weights)
        if self.model is None or bundled_checkpoint(self.model):
            return f"bundled {self.model or 'default'}"
        prefix, sep, _ = self.model.partition(":")
        return BUILT_WEIGHTS.get(prefix, "random weights") if sep else "random weights"

    def load(self):
        """(model in eval mode, metadata)."""
        return load_model(self.model, self.weights, self.weights_format, self.options)

    @classmethod
    def from_mapping(cls, values: Mapping, where: str) -> "ModelReference":
        """A reference from a YAML mapping; unknown keys are an error naming ``where``."""
        unknown = sorted(set(map(str, values)) - set(MAPPING_KEYS))
        if unknown:
            raise InputError(f"{where}: unknown keys {unknown} (expected some of {list(MAPPING_KEYS)})")
        for key in ("name", "model", "weights", "weights_format"):
            if values.get(key) is not None and not isinstance(values[key], str):
                raise InputError(f"{where}: {key} must be a string, got {values[key]!r}")
        reference = parse_reference(values["model"]) if values.get("model") else cls()
        if reference.weights is not None and values.get("weights"):
            raise InputError(f"{where}: weights given twice (in model and in weights)")
        return cls(
            reference.model,
            values.get("weights") or reference.weights,
            values.get("weights_format") or "auto",
            ModelOptions.from_mapping(values, where),
            values.get("name"),
        )


def parse_reference(reference: str | Mapping, where: str = "model reference") -> ModelReference:
    """Parse a reference string or mapping (see the module docstring) without loading anything."""
    if isinstance(reference, Mapping):
        return ModelReference.from_mapping(reference, where)
    if not isinstance(reference, str) or not reference:
        raise InputError(f"{where}: expected a model reference (a string or a mapping), got {reference!r}")
    where = f"{where} {reference}"
    if reference.lstrip().startswith("{"):
        values = read_inline_mapping(reference, where)
        return ModelReference.from_mapping(values, where)
    if Path(reference).suffix in (".yaml", ".yml"):
        values = read_document(Path(reference), yaml.safe_load, (yaml.YAMLError,), where, "a YAML mapping describing a model")
        if not isinstance(values, Mapping):
            raise InputError(f"{where}: expected a YAML mapping of model options")
        return ModelReference.from_mapping(values, where)
    if reference == "default":
        return ModelReference()
    if bundled_checkpoint(reference):
        return ModelReference(reference)
    prefix, sep, target = reference.partition(":")
    if sep and prefix in EXTERNAL_SOURCES:
        count = TARGET_PARTS.get(prefix)
        parts = target.split(":", count) if count else [target]
        weights = parts[count] if count and len(parts) > count else None
        return ModelReference(f"{prefix}:{':'.join(parts[:count] if count else parts)}", weights)
    if sep and not Path(reference).exists():
        return ModelReference(prefix, target)
    return ModelReference(None, reference)


def read_inline_mapping(text: str, where: str) -> Mapping:
    """A flow-style YAML mapping given on the command line."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({first_line(exc)})") from None
    if not isinstance(values, Mapping):
        raise InputError(f"{where}: expected a mapping such as '{{model: torchreid:osnet_x1_0, input_size: [256, 128]}}'")
    return values
