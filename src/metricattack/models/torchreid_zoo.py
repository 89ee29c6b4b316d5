"""``torchreid:NAME``: any model of torchreid's own registry, built by torchreid itself (never pretrained).

Needs the optional extra ``pip install 'metricattack[torchreid]'``. Weights, when given, are read
safely (``read_state_dict``) and must fit the built model exactly; the classifier's size is taken
from the checkpoint, since torchreid builds it with the number of training identities.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from metricattack.errors import InputError
from metricattack.models.checkpoints import load_state_strict
from metricattack.models.foreign import read_state_dict
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

INSTALL_HINT = "pip install 'metricattack[torchreid]'"
INPUT_SIZES = {"hacnn": (160, 64)}  # torchreid's default is 256x128; HACNN asserts 160x64


def import_torchreid() -> ModuleType:
    """The installed torchreid package, or a one-line error saying how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its "Cython evaluation is unavailable" notice
            import torchreid
    except ImportError as exc:
        raise InputError(f"--model torchreid:NAME needs torchreid, which is not importable ({exc}): {INSTALL_HINT}") from None
    return torchreid


def torchreid_names() -> list[str]:
    """Names in torchreid's model registry."""
    return sorted(getattr(import_torchreid().models, "__model_factory"))


def build_torchreid(name: str, num_classes: int = 1) -> nn.Module:
    """torchreid's ``build_model`` with random weights: pretrained=False, so nothing is downloaded."""
    names = torchreid_names()
    if name not in names:
        raise InputError(f"unknown torchreid model {name!r} (expected one of {', '.join(names)})")
    return import_torchreid().models.build_model(name, num_classes=num_classes, loss="softmax", pretrained=False, use_gpu=False)


def classifier_size(built: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> int:
    """The number of classes ``state`` was trained with: the first dimension of the tensors that are
    size 1 in a model built with one class and larger in the checkpoint (1 when that is not one number)."""
    sizes = {
        state[key].shape[0]
        for key, own in built.items()
        if key in state and own.dim() > 0 and own.shape[0] == 1 and state[key].shape[1:] == own.shape[1:]
        and state[key].shape[0] != 1
    }
    return sizes.pop() if len(sizes) == 1 else 1


def load_torchreid(name: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """torchreid's model ``name`` (with ``weights`` if given) behind our preprocessing."""
    arch = f"torchreid:{name}"
    network = build_torchreid(name)
    if weights is not None:
        state = read_state_dict(weights)
        classes = classifier_size(network.state_dict(), state)
        if classes != 1:
            network = build_torchreid(name, classes)
        load_state_strict(network, state, weights, arch)
    # torchreid's test defaults: ImageNet mean/std, raw euclidean distance (normalize_feature=False)
    return wrap_network(network, arch, options, input_size=INPUT_SIZES.get(name, (256, 128)), metric="euclidean", normalize=False)
