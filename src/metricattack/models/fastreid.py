"""``fastreid:FILE``: a fast-reid checkpoint, built by fast-reid itself when it is installed
(``fastreid_native``); otherwise by the re-implementation here of its ``Baseline`` (ResNet backbone +
EmbeddingHead with BN neck).

fast-reid's checkpointer writes ``{"model": state_dict, "optimizer": ..., "iteration": ...}``
(read with ``weights_only=True``); the settings that shape the forward pass but hold no weights
(last stride, pooling, input size, pixel mean/std, test metric) are only in the ``config.yaml``
its training writes beside the checkpoint, so that file is required. In eval mode fast-reid returns
the head's output after the bottleneck: pool -> [1x1 conv embedding] -> [BN] -> (B, D).
Only what is reproduced exactly is accepted: other backbones, heads, norms, IBN / SE / non-local
blocks are refused (by the config check or by the strict key check); fast-reid itself builds those.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from metricattack.system.atomic import read_document
from metricattack.errors import InputError
from metricattack.models.backbones import ResNetTrunk
from metricattack.models.checkpoints import load_state_strict
from metricattack.models.fastreid_native import import_fastreid, load_fastreid_native
from metricattack.models.foreign import read_state_dict
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

DEPTHS = {"18x": "resnet18", "34x": "resnet34", "50x": "resnet50", "101x": "resnet101"}
# fast-reid's defaults (fastreid/config/defaults.py) for the settings read here
DEFAULTS = {
    ("MODEL", "META_ARCHITECTURE"): "Baseline",
    ("MODEL", "BACKBONE", "NAME"): "build_resnet_backbone",
    ("MODEL", "BACKBONE", "DEPTH"): "50x",
    ("MODEL", "BACKBONE", "LAST_STRIDE"): 1,
    ("MODEL", "BACKBONE", "NORM"): "BN",
    ("MODEL", "BACKBONE", "WITH_IBN"): False,
    ("MODEL", "BACKBONE", "WITH_SE"): False,
    ("MODEL", "BACKBONE", "WITH_NL"): False,
    ("MODEL", "HEADS", "NAME"): "EmbeddingHead",
    ("MODEL", "HEADS", "NORM"): "BN",
    ("MODEL", "HEADS", "POOL_LAYER"): "GlobalAvgPool",
    ("MODEL", "HEADS", "EMBEDDING_DIM"): 0,
    ("MODEL", "HEADS", "WITH_BNNECK"): False,
    ("MODEL", "PIXEL_MEAN"): [0.485 * 255, 0.456 * 255, 0.406 * 255],
    ("MODEL", "PIXEL_STD"): [0.229 * 255, 0.224 * 255, 0.225 * 255],
    ("INPUT", "SIZE_TEST"): [256, 128],
    ("TEST", "METRIC"): "cosine",
}
SUPPORTED = {
    ("MODEL", "META_ARCHITECTURE"): ("Baseline",),
    ("MODEL", "BACKBONE", "NAME"): ("build_resnet_backbone",),
    ("MODEL", "BACKBONE", "DEPTH"): tuple(DEPTHS),
    ("MODEL", "BACKBONE", "NORM"): ("BN", "syncBN"),
    ("MODEL", "BACKBONE", "WITH_IBN"): (False,),
    ("MODEL", "BACKBONE", "WITH_SE"): (False,),
    ("MODEL", "BACKBONE", "WITH_NL"): (False,),
    ("MODEL", "HEADS", "NAME"): ("EmbeddingHead",),
    ("MODEL", "HEADS", "NORM"): ("BN", "syncBN"),
    ("TEST", "METRIC"): ("cosine", "euclidean"),
}


class GeneralizedMeanPool(nn.Module):
    """fast-reid's GeneralizedMeanPooling(P): (mean over H,W of clamp(x, 1e-6)^p)^(1/p); P learns p."""

    def __init__(self, learnable: bool, norm: float = 3.0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * norm) if learnable else norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=1e-6).pow(self.p), 1).pow(1.0 / self.p)


class AvgMaxPool(nn.Module):
    """fast-reid's AdaptiveAvgMaxPool: global average plus global max."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1)


POOLS = {
    "GlobalAvgPool": lambda: nn.AdaptiveAvgPool2d(1),
    "FastGlobalAvgPool": lambda: nn.AdaptiveAvgPool2d(1),
    "GlobalMaxPool": lambda: nn.AdaptiveMaxPool2d(1),
    "AdaptiveAvgMaxPool": AvgMaxPool,
    "GeneralizedMeanPooling": lambda: GeneralizedMeanPool(learnable=False),
    "GeneralizedMeanPoolingP": lambda: GeneralizedMeanPool(learnable=True),
}


class EmbeddingHead(nn.Module):
    """fast-reid's EmbeddingHead in eval mode: pool -> bottleneck (1x1 conv, BN) -> (B, D)."""

    def __init__(self, pool: str, feat_dim: int, embedding_dim: int, bnneck: bool) -> None:
        super().__init__()
        self.pool_layer = POOLS[pool]()
        neck: list[nn.Module] = []
        if embedding_dim > 0:
            neck.append(nn.Conv2d(feat_dim, embedding_dim, 1, 1, bias=False))
            feat_dim = embedding_dim
        if bnneck:
            neck.append(nn.BatchNorm2d(feat_dim))
        self.bottleneck = nn.Sequential(*neck)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.pool_layer(feature_map))[..., 0, 0]


class Baseline(nn.Module):
    """fast-reid's Baseline with its parameter names (``backbone.*``, ``heads.*``), eval-mode forward."""

    def __init__(self, depth: str, last_stride: int, pool: str, embedding_dim: int, bnneck: bool) -> None:
        super().__init__()
        self.backbone = ResNetTrunk(DEPTHS[depth], last_stride)
        self.backbone.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # fast-reid's: no padding
        self.heads = EmbeddingHead(pool, self.backbone.out_channels, embedding_dim, bnneck)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads(self.backbone(images))


def read_config(weights: Path) -> dict[tuple[str, ...], object]:
    """The settings read from the ``config.yaml`` beside ``weights`` (fast-reid's defaults where absent)."""
    path = weights.parent / "config.yaml"
    expected = "the config.yaml fast-reid's training writes beside its checkpoints (pooling, last stride and input size are not in the weights)"
    config = read_document(path, yaml.safe_load, (yaml.YAMLError,), str(path), expected)
    if not isinstance(config, dict) or "_BASE_" in config:
        raise InputError(f"{path}: expected {expected}, with every setting merged (no _BASE_)")
    values = {}
    for keys, default in DEFAULTS.items():
        node = config
        for key in keys:
            node = node.get(key, default) if isinstance(node, dict) else default
        values[keys] = node
    for keys, allowed in SUPPORTED.items():
        if values[keys] not in allowed:
            raise InputError(f"{path}: {'.'.join(keys)} is {values[keys]!r}; only {', '.join(map(str, allowed))} can be reproduced")
    if values[("MODEL", "HEADS", "POOL_LAYER")] not in POOLS:
        raise InputError(f"{path}: MODEL.HEADS.POOL_LAYER is {values[('MODEL', 'HEADS', 'POOL_LAYER')]!r} (expected one of {', '.join(POOLS)})")
    return values


CLASSIFIER_PREFIXES = ("heads.weight", "heads.classifier.", "heads.cls_layer.")


def load_fastreid(target: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """The fast-reid model in the checkpoint ``target`` behind our preprocessing: built by fast-reid when it
    is importable, else the re-implemented Baseline."""
    if weights is not None:
        raise InputError(f"--weights {weights}: give the fast-reid checkpoint as --model fastreid:FILE")
    path = Path(target)
    fastreid = import_fastreid()
    if fastreid is not None:
        return load_fastreid_native(fastreid, path, options)
    state = read_state_dict(path)
    config = read_config(path)
    pixel_mean = state.pop("pixel_mean", torch.tensor(config[("MODEL", "PIXEL_MEAN")])).flatten()
    pixel_std = state.pop("pixel_std", torch.tensor(config[("MODEL", "PIXEL_STD")])).flatten()
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    network = Baseline(
        config[("MODEL", "BACKBONE", "DEPTH")],
        int(config[("MODEL", "BACKBONE", "LAST_STRIDE")]),
        config[("MODEL", "HEADS", "POOL_LAYER")],
        int(config[("MODEL", "HEADS", "EMBEDDING_DIM")]),
        bool(config[("MODEL", "HEADS", "WITH_BNNECK")]),
    )
    arch = f"fastreid:{path}"
    load_state_strict(network, state, f"{path} (read as fast-reid Baseline)", arch)
    metric = config[("TEST", "METRIC")]
    return wrap_network(
        network, arch, options,
        input_size=tuple(int(v) for v in config[("INPUT", "SIZE_TEST")]),
        mean=tuple(float(v) / 255 for v in pixel_mean),  # fast-reid's images are in [0,255]; ours in [0,1]
        std=tuple(float(v) / 255 for v in pixel_std),
        metric=metric,
        normalize=metric == "cosine",
    )
