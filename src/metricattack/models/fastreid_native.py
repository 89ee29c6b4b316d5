"""``fastreid:FILE`` built by fast-reid itself, when the ``fastreid`` package is importable.

fast-reid 1.4.0 pins torch 1.13, so it is installed beside the extra that holds what its import needs:
``pip install --no-deps fastreid`` and ``pip install 'metricattack[fastreid]'``. Any meta architecture
(Baseline, MGN, MoCo; a Distiller is its student, a Baseline) and backbone (ResNet with IBN / SE /
non-local blocks, ResNeXt, ResNeSt, OSNet, RegNet, EfficientNet, MobileNet, ShuffleNet, RepVGG, ViT)
fast-reid builds is loaded:

- the ``config.yaml`` beside the checkpoint is merged into fast-reid's defaults (``get_cfg``,
  ``merge_from_file``: safe YAML, ``_BASE_`` resolved), with ``MODEL.BACKBONE.PRETRAIN = False`` (nothing
  is downloaded) and ``MODEL.DEVICE = "cpu"``; ``fastreid.modeling.build_model`` builds the network;
- the checkpoint's ``model`` state dict is read with ``weights_only=True`` (never fast-reid's
  ``Checkpointer``, which unpickles) and must fit exactly; the classifier's size is taken from it.

fast-reid's model takes images in [0,255] and normalises them itself: (x - PIXEL_MEAN) / PIXEL_STD.
Ours take [0,1], so the spec's mean/std are PIXEL_MEAN/255 and PIXEL_STD/255, and the network's own
normalisation is made the identity (mean 0, std 1): (x - M/255) / (S/255) = (255x - M) / S reaches the
same backbone. In eval mode the forward returns the features fast-reid's evaluation uses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from metricattack.errors import InputError, first_line
from metricattack.models.checkpoints import load_state_strict
from metricattack.models.foreign import read_state_dict
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

INSTALL_HINT = "pip install --no-deps fastreid && pip install 'metricattack[fastreid]'"
CONFIG_EXPECTED = "the config.yaml fast-reid's training writes beside its checkpoints (pooling, last stride and input size are not in the weights)"
CLASSIFIER_KEY = re.compile(r"(heads|b\d+_head)\.weight")  # Baseline's / MGN's classifier weights: (classes, D)
EVAL_AS = {"Distiller": "Baseline"}  # meta architectures whose eval forward is another's (teachers are not in the weights)
METRICS = ("cosine", "euclidean")


def import_fastreid() -> ModuleType | None:
    """fast-reid with its config and modeling packages; None when it is not installed (then the
    re-implementation in ``models.fastreid`` is used). Installed but not importable is a one-line error."""
    if importlib.util.find_spec("fastreid") is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import fastreid.config
            import fastreid.modeling
    except ImportError as exc:
        raise InputError(f"--model fastreid:FILE: fast-reid is installed but not importable ({exc}): {INSTALL_HINT}") from None
    return fastreid


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run in ``folder``: fast-reid's RegNet and EfficientNet builders read their own YAML by a path
    relative to the folder holding the ``fastreid`` package."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def read_fastreid_config(fastreid: ModuleType, path: Path):
    """fast-reid's defaults merged with the ``config.yaml`` beside the checkpoint ``path``, set to build on the CPU untrained."""
    config_path = path.parent / "config.yaml"
    if not config_path.is_file():
        raise InputError(f"{config_path}: not found (expected {CONFIG_EXPECTED})")
    cfg = fastreid.config.get_cfg()
    try:
        cfg.merge_from_file(str(config_path))
    except Exception as exc:  # yacs / PyYAML / a missing _BASE_: an unknown key, a wrong type, a broken file
        raise InputError(f"{config_path}: fast-reid cannot read it ({first_line(exc, with_type=True)})") from None
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = EVAL_AS.get(cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.META_ARCHITECTURE)
    if cfg.TEST.METRIC not in METRICS:
        raise InputError(f"{config_path}: TEST.METRIC is {cfg.TEST.METRIC!r} (expected one of {', '.join(METRICS)})")
    return cfg


def build_fastreid(fastreid: ModuleType, cfg, source: Path) -> nn.Module:
    """fast-reid's ``build_model(cfg)`` in eval mode, quietly; a config it cannot build is one line."""
    try:
        with warnings.catch_warnings(), inside(Path(fastreid.__file__).parents[1]):
            warnings.simplefilter("ignore")
            return fastreid.modeling.build_model(cfg).eval()
    except Exception as exc:  # fast-reid's code: an unregistered name, a depth its builder lacks, ...
        raise InputError(
            f"{source}: fast-reid cannot build {cfg.MODEL.META_ARCHITECTURE} with {cfg.MODEL.BACKBONE.NAME} "
            f"{cfg.MODEL.BACKBONE.DEPTH} ({first_line(exc, with_type=True)})"
        ) from None


class FastReidNetwork(nn.Module):
    """fast-reid's model on images our ``Preprocess`` has already normalised: its own normalisation is the identity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            model.pixel_mean.zero_()  # its in-place (x - pixel_mean) / pixel_std then leaves x as it is
            model.pixel_std.fill_(1.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) normalised -> (B,D)
        return self.model(images)


def load_fastreid_native(fastreid: ModuleType, path: Path, options: ModelOptions) -> WrappedModel:
    """The model fast-reid builds from the ``config.yaml`` beside ``path``, with the weights in ``path``."""
    state = read_state_dict(path)
    cfg = read_fastreid_config(fastreid, path)
    # older fast-reid versions kept the pixel statistics in the weights: they are what such a model normalised with
    pixel_mean, pixel_std = (
        state.pop(key).flatten().tolist() if key in state else list(values)
        for key, values in (("pixel_mean", cfg.MODEL.PIXEL_MEAN), ("pixel_std", cfg.MODEL.PIXEL_STD))
    )
    classes = {value.shape[0] for key, value in state.items() if CLASSIFIER_KEY.fullmatch(key) and value.dim() == 2}
    if len(classes) == 1:  # the config written before training may still say 0 classes
        cfg.MODEL.HEADS.NUM_CLASSES = classes.pop()
    model = build_fastreid(fastreid, cfg, path)
    arch = f"fastreid:{path}"
    load_state_strict(model, state, f"{path} (read as fast-reid {cfg.MODEL.META_ARCHITECTURE})", arch)
    return wrap_network(
        FastReidNetwork(model), arch, options,
        input_size=tuple(int(v) for v in cfg.INPUT.SIZE_TEST),
        mean=tuple(float(v) / 255 for v in pixel_mean),  # fast-reid's images are in [0,255]; ours in [0,1]
        std=tuple(float(v) / 255 for v in pixel_std),
        metric=cfg.TEST.METRIC,
        normalize=cfg.TEST.METRIC == "cosine",
    )
