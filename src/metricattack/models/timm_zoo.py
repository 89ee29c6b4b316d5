"""``timm:NAME``: any model of timm's registry, built by timm itself as a feature extractor (never pretrained).

Needs the optional extra ``pip install 'metricattack[timm]'``. ``timm.create_model(NAME, pretrained=False,
num_classes=0)`` builds the network with random weights and no classifier, so its forward returns the
pooled features (B, D) and nothing is downloaded. Input size, mean and std come from the model's
pretrained config (``NAME.TAG`` picks a tag's); a model that takes its image size as an argument
(ViT, Swin, ...) is built at the user's ``--input-size``. Weights, when given, are read safely
(``read_state_dict``) and must fit exactly, after the classifier timm's config names is dropped.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from types import ModuleType

from torch import nn

from metricattack.errors import InputError, first_line
from metricattack.models.checkpoints import load_state_strict
from metricattack.models.foreign import read_state_dict
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

INSTALL_HINT = "pip install 'metricattack[timm]'"


def import_timm() -> ModuleType:
    """The installed timm package, or a one-line error saying how to install it."""
    try:
        import timm
        import timm.data
    except ImportError as exc:
        raise InputError(f"--model timm:NAME needs timm, which is not importable ({exc}): {INSTALL_HINT}") from None
    return timm


def build_timm(name: str, **kwargs) -> nn.Module:
    """timm's ``create_model(name, pretrained=False, num_classes=0)``: random weights, pooled features, no download."""
    timm = import_timm()
    if not timm.is_model(name):
        names = timm.list_models()
        close = difflib.get_close_matches(name.partition(".")[0], names, n=5, cutoff=0.6)
        hint = f"close names: {', '.join(close)}; " if close else ""
        raise InputError(f"unknown timm model {name!r} ({hint}timm.list_models() lists all {len(names)})")
    try:
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except Exception as exc:  # timm's own refusal, e.g. an unknown pretrained tag or an image size the model cannot take
        raise InputError(f"--model timm:{name}: timm cannot build it ({first_line(exc, with_type=True)})") from None


def classifier_prefixes(network: nn.Module) -> tuple[str, ...]:
    """The key prefixes of the classifier timm's config names (``fc.``, ``head.``, ``head.fc.``, ...)."""
    classifier = getattr(network, "pretrained_cfg", {}).get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names)


def takes_image_size(network: nn.Module) -> bool:
    """Whether the model's class is built for one image size, given as ``img_size`` (ViT, Swin, ...)."""
    return "img_size" in inspect.signature(type(network).__init__).parameters


def load_timm(name: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """timm's model ``name`` (with ``weights`` if given) behind our preprocessing, with timm's input size and mean/std."""
    arch = f"timm:{name}"
    network = build_timm(name)
    config = import_timm().data.resolve_data_config({}, model=network)  # input_size (3, H, W), mean, std
    input_size = tuple(int(v) for v in config["input_size"][1:])
    if options.input_size is not None and options.input_size != input_size and takes_image_size(network):
        network = build_timm(name, img_size=options.input_size)
    if weights is not None:
        state = read_state_dict(weights)
        prefixes = classifier_prefixes(network)
        state = {key: value for key, value in state.items() if not (prefixes and key.startswith(prefixes))}
        load_state_strict(network, state, weights, arch)
    mean, std = (tuple(float(v) for v in config[key]) for key in ("mean", "std"))
    return wrap_network(network, arch, options, input_size=input_size, mean=mean, std=std)

