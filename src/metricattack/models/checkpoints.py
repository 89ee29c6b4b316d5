"""Our checkpoint format: ``NAME.safetensors`` (weights) beside ``NAME.json`` (metadata).

The metadata holds the model spec (architecture, input size, mean/std, feature dim, classes),
plus whatever the caller adds: data set, training command, clean metrics.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from metricattack.system.atomic import atomic_write, atomic_write_text, read_document
from metricattack.errors import InputError, first_line
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


def _unpickler_reason(message: str) -> str:
    """The specific reason in torch's long weights-only refusal (the first text after its marker)."""
    _, marker, rest = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in rest.splitlines() if line.strip()] if marker else []
    return lines[0].split(". ")[0] if lines else "unsupported object"


def load_torch_file(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` with one-line errors: never unpickles objects, refuses files that need it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol before refusing
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: refused: this file needs more than weights to load ({_unpickler_reason(str(exc))}); "
            "re-save its state_dict, or convert it to safetensors"
        ) from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder (expected a checkpoint file)") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: not a readable torch checkpoint ({first_line(exc)})") from None


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, with one-line errors for a missing or damaged file."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint weights not found") from None
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{path}: not a readable safetensors file ({exc})") from None


def read_metadata(path: str | Path) -> dict:
    """Read a checkpoint's JSON metadata, with a one-line error when it is missing or malformed."""
    _, meta_path = checkpoint_paths(path)
    expected = "the checkpoint's JSON metadata, NAME.json beside NAME.safetensors"
    meta = read_document(meta_path, json.loads, (json.JSONDecodeError,), str(meta_path), expected)
    if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict) or not meta["spec"]:
        raise InputError(f"{meta_path}: expected a JSON object with a 'spec' entry (the model's architecture)")
    return meta


def training_recipe(meta: dict) -> list[str]:
    """The train commands that made a checkpoint, oldest first: those that made its starting weights
    (``init_recipe``, when it was fine-tuned), then its own ``train_command``; empty when unrecorded."""
    earlier = meta.get("init_recipe")
    earlier = earlier if isinstance(earlier, list) and all(isinstance(command, str) for command in earlier) else []
    own = [meta["train_command"]] if isinstance(meta.get("train_command"), str) else []
    return [*earlier, *own]


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
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        shown = ", ".join(broken[:3]) + (f" (+{len(broken) - 3} more)" if len(broken) > 3 else "")
        raise InputError(f"{source}: refused: weights hold NaN or infinite values ({shown})")
    model.load_state_dict(state)


def load_checkpoint(path: str | Path, **overrides) -> tuple[ReIDModel, dict]:
    """Load one of our checkpoints (spec entries replaced by ``overrides``); returns the model in eval mode and its metadata."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = read_metadata(path)
    try:
        model = ReIDModel(ModelSpec.from_dict({**meta["spec"], **overrides}))
    except InputError as exc:
        raise InputError(f"{meta_path}: {exc}") from None
    if overrides:
        meta = {**meta, "spec": model.spec.to_dict()}
    state = load_safetensors(weights_path)
    load_state_strict(model, state, weights_path)
    return model.eval(), meta
