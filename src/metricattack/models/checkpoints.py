"""Our checkpoint format: ``NAME.safetensors`` (weights) beside ``NAME.json`` (metadata).

The metadata holds the model spec (architecture, input size, mean/std, feature dim, classes),
plus whatever the caller adds: data set, training command, clean metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from metricattack.atomic import atomic_write, atomic_write_text, read_document
from metricattack.errors import InputError
from metricattack.models.reid import ModelSpec, ReIDModel

FORMAT_VERSION = 1


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The (weights, metadata) pair for a checkpoint given either file or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(path: str | Path, model: ReIDModel, **metadata) -> Path:
    """Write the model's weights and metadata atomically; returns the weights path."""
    weights_path, meta_path = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": model.spec.to_dict(),
        "feature_dim": model.feature_dim,
        **metadata,
    }
    atomic_write(weights_path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return weights_path


def read_metadata(path: str | Path) -> dict:
    """Read a checkpoint's JSON metadata, with a one-line error when it is missing or malformed."""
    _, meta_path = checkpoint_paths(path)
    expected = "the checkpoint's JSON metadata, NAME.json beside NAME.safetensors"
    meta = read_document(meta_path, json.loads, (json.JSONDecodeError,), str(meta_path), expected)
    if not isinstance(meta, dict) or "spec" not in meta:
        raise InputError(f"{meta_path}: expected a JSON object with a 'spec' entry")
    return meta


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path, arch: str | None = None) -> None:
    """Load ``state`` into ``model`` (named ``arch``, default its spec's); a mismatch is one line listing
    missing / unexpected / misshapen keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
                parts.append(f"{len(keys)} {label} keys: {shown}")
        raise InputError(f"{source}: checkpoint does not fit {arch or model.spec.arch}: " + "; ".join(parts))
    model.load_state_dict(state)


def load_checkpoint(path: str | Path, **overrides) -> tuple[ReIDModel, dict]:
    """Load one of our checkpoints (spec entries replaced by ``overrides``); returns the model in eval mode and its metadata."""
    weights_path, _ = checkpoint_paths(path)
    meta = read_metadata(path)
    model = ReIDModel(ModelSpec.from_dict({**meta["spec"], **overrides}))
    if overrides:
        meta = {**meta, "spec": model.spec.to_dict()}
    try:
        state = load_file(str(weights_path))
    except FileNotFoundError:
        raise InputError(f"{weights_path}: checkpoint weights not found") from None
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    load_state_strict(model, state, weights_path)
    return model.eval(), meta
