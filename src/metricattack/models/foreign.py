"""Adapters for checkpoints written by other re-ID code: torchreid and the paper's code.

Each format is a list of prefix rules (drop or rename) plus the architecture options its models
were built with; classifiers are dropped because the attack only needs features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from metricattack.errors import InputError
from metricattack.models.checkpoints import load_safetensors, load_state_strict, load_torch_file
from metricattack.models.reid import ReIDModel, build_model

TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "features.")


@dataclass(frozen=True)
class ForeignFormat:
    """How one foreign layout maps onto ``ReIDModel``: prefix renames (None drops) and spec options."""

    name: str
    signature: str  # a key prefix only this layout has
    renames: tuple[tuple[str, str | None], ...]
    options: dict = field(default_factory=dict)


PAPER_OPTIONS = {"last_stride": 2, "bnneck": True, "metric": "euclidean", "normalize": True}

FORMATS = (
    # layumi's Person_reID_baseline ft_net / ft_net_dense: ClassBlock(Linear, BN, ..., classifier).
    ForeignFormat(
        "paper-classblock",
        "classifier.add_block.",
        (
            ("model.fc.", None),
            ("model.classifier.", None),
            ("classifier.classifier.", None),
            ("classifier.add_block.0.", "embedding."),
            ("classifier.add_block.1.", "neck."),
            ("model.", "backbone."),
        ),
        {**PAPER_OPTIONS, "final_relu": True},
    ),
    # Bai et al.'s ft_net (ResNet-50, BN at model.fc.0) and ft_net_dense (DenseNet-121, BN at model.bn.0).
    ForeignFormat(
        "paper",
        "model.",
        (
            ("fc0.", None),
            ("model.classifier.", None),
            ("model.fc.0.", "neck."),
            ("model.bn.0.", "neck."),
            ("model.", "backbone."),
        ),
        {**PAPER_OPTIONS, "final_relu": False},
    ),
    # Bai et al.'s ResNeXt-50: trunk at the root, BN at feat_bn, classifier fc0.
    ForeignFormat(
        "paper-resnext",
        "feat_bn.",
        (("fc0.", None), ("feat_bn.", "neck."), *((p, "backbone." + p) for p in TRUNK_PREFIXES)),
        PAPER_OPTIONS,
    ),
    # torchreid: trunk at the root, optional fc (Linear, BN1d, ReLU), classifier; no BNNeck.
    ForeignFormat(
        "torchreid",
        "",
        (
            ("classifier.", None),
            ("fc.0.", "embedding."),
            ("fc.1.", "neck."),
            *((p, "backbone." + p) for p in TRUNK_PREFIXES),
        ),
        {"last_stride": 2, "bnneck": False, "metric": "euclidean", "normalize": False, "final_relu": True},
    ),
)
FORMAT_NAMES = ("auto",) + tuple(f.name for f in FORMATS)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from a safetensors file or a weights-only torch file, unwrapping ``state_dict`` and ``module.``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict (names -> tensors), or a dict with a 'state_dict' entry")
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_format(state: dict[str, torch.Tensor]) -> ForeignFormat:
    """The first format whose signature prefix some key has (torchreid matches anything)."""
    return next(fmt for fmt in FORMATS if any(key.startswith(fmt.signature) for key in state))


def rename_keys(state: dict[str, torch.Tensor], fmt: ForeignFormat) -> dict[str, torch.Tensor]:
    """Apply the format's first matching prefix rule to each key; keys no rule names stay as they are."""
    renamed = {}
    for key, value in state.items():
        for prefix, target in fmt.renames:
            if key.startswith(prefix):
                if target is not None:
                    renamed[target + key[len(prefix):]] = value
                break
        else:
            renamed[key] = value
    return renamed


def load_foreign(path: str | Path, arch: str, fmt: str = "auto", **options) -> ReIDModel:
    """Load a torchreid or paper-code checkpoint into ``arch``; returns the model in eval mode."""
    if fmt not in FORMAT_NAMES:
        raise InputError(f"unknown checkpoint format {fmt!r} (expected one of {', '.join(FORMAT_NAMES)})")
    state = read_state_dict(path)
    layout = detect_format(state) if fmt == "auto" else next(f for f in FORMATS if f.name == fmt)
    state = rename_keys(state, layout)
    spec_options = dict(layout.options)
    if "embedding.weight" in state:
        spec_options["embedding_dim"] = state["embedding.weight"].shape[0]
        if layout.name == "torchreid":
            spec_options.update(bnneck="neck.weight" in state, activation="relu")
    spec_options.update(options)
    model = build_model(arch, **spec_options)
    load_state_strict(model, state, f"{path} (read as {layout.name} format)")
    return model.eval()
