"""Adapters for checkpoints written by other re-ID code: torchreid and the paper's code, loaded into our
registry's architectures (torchreid's own models: ``torchreid_zoo``; fast-reid's: ``fastreid``).

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
    # torchreid's resnet50 / resnext50_32x4d / densenet121 / resnet18: trunk at the root, classifier; no fc, no BNNeck.
    ForeignFormat(
        "torchreid",
        "",
        (("classifier.", None), *((p, "backbone." + p) for p in TRUNK_PREFIXES)),
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
    for wrapper in ("state_dict", "model"):  # torchreid's save_checkpoint; fast-reid's checkpointer
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict (names -> tensors), or a dict with a 'state_dict' or 'model' entry")
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


def refuse_other_models(state: dict[str, torch.Tensor], layout: ForeignFormat, path: str | Path, arch: str) -> None:
    """Refuse, with the reference that loads them exactly, checkpoints of models whose forward pass
    differs from ``arch``'s in ways the key check cannot see (strides, activations, pooling).

    torchreid's ``*_fc512`` models add fc layers *and* change the last stride (resnet50_fc512: 1, not 2),
    so an fc layer means the checkpoint is not torchreid's plain ``arch``.
    """
    if any(key.startswith("heads.bottleneck.") for key in state):
        raise InputError(f"{path}: a fast-reid checkpoint: load it with --model fastreid:{path}")
    if layout.name == "torchreid" and any(key.startswith("fc.") for key in state):
        raise InputError(
            f"{path}: has fc layers, which torchreid's {arch} does not (its *_fc512 models also use last stride 1): "
            "load it with --model torchreid:NAME, the torchreid model it was trained as (e.g. torchreid:resnet50_fc512)"
        )


def load_foreign(path: str | Path, arch: str, fmt: str = "auto", **options) -> ReIDModel:
    """Load a torchreid or paper-code checkpoint into ``arch``; returns the model in eval mode."""
    if fmt not in FORMAT_NAMES:
        raise InputError(f"unknown checkpoint format {fmt!r} (expected one of {', '.join(FORMAT_NAMES)})")
    state = read_state_dict(path)
    layout = detect_format(state) if fmt == "auto" else next(f for f in FORMATS if f.name == fmt)
    refuse_other_models(state, layout, path, arch)
    state = rename_keys(state, layout)
    spec_options = dict(layout.options)
    if "embedding.weight" in state:
        spec_options["embedding_dim"] = state["embedding.weight"].shape[0]
    spec_options.update(options)
    model = build_model(arch, **spec_options)
    load_state_strict(model, state, f"{path} (read as {layout.name} format)")
    return model.eval()
