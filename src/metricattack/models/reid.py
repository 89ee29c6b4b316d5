"""The re-ID network: preprocessing, a trunk, global pooling, optional embedding, BNNeck and a
classifier used only in training. In eval mode it maps images in [0,1] to features."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from metricattack.errors import InputError
from metricattack.models.backbones import BACKBONES
from metricattack.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from metricattack.models.purifier import PURIFIERS

ACTIVATIONS = {"none": nn.Identity, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1)}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers(length: int, positive_ints: bool = False):
    def check(value: object) -> bool:
        items = value if isinstance(value, (list, tuple)) else ()
        kind = (lambda v: _count(v) and v > 0) if positive_ints else (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        return len(items) == length and all(kind(v) for v in items)

    return check


# spec key -> (check of a JSON value, what was expected), so a hand-edited checkpoint fails in one line
SPEC_CHECKS = {
    "arch": (lambda v: isinstance(v, str), "a model name"),
    "num_classes": (_count, "an integer >= 0"),
    "embedding_dim": (lambda v: v is None or (_count(v) and v > 0), "null or an integer >= 1"),
    "bnneck": (lambda v: isinstance(v, bool), "true or false"),
    "activation": (lambda v: isinstance(v, str), "an activation name"),
    "last_stride": (lambda v: _count(v) and v > 0, "an integer >= 1"),
    "final_relu": (lambda v: isinstance(v, bool), "true or false"),
    "input_size": (_numbers(2, positive_ints=True), "[height, width] in pixels"),
    "mean": (_numbers(3), "3 numbers"),
    "std": (_numbers(3), "3 numbers"),
    "metric": (lambda v: isinstance(v, str), "a distance name"),
    "normalize": (lambda v: isinstance(v, bool), "true or false"),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's architecture (stored in checkpoint metadata).

    ``embedding_dim`` adds a Linear layer after pooling (None: features are the pooled map);
    ``bnneck`` adds BatchNorm1d whose output is the feature (Luo et al.'s BNNeck);
    ``activation`` follows the neck (torchreid's fc512 uses relu);
    ``metric`` / ``normalize`` are the distance the model was trained and evaluated with;
    ``purifier`` puts an input purifier (``PURIFIERS``) in front of the whole model.
    """

    arch: str
    num_classes: int = 0
    embedding_dim: int | None = None
    bnneck: bool = True
    activation: str = "none"
    last_stride: int = 1
    final_relu: bool = True
    input_size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    metric: str = "euclidean"
    normalize: bool = True
    purifier: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        """Rebuild from ``to_dict`` output, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"model spec has unknown keys {unknown} (expected some of {sorted(known)})")
        if "arch" not in data:
            raise InputError("model spec has no 'arch' (the architecture's name)")
        for key, value in data.items():
            check, expected = SPEC_CHECKS.get(key, (lambda v: True, ""))
            if not check(value):
                raise InputError(f"model spec: {key} is {value!r} (expected {expected})")
        values = dict(data)
        for key in ("input_size", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


class ReIDModel(nn.Module):
    """images in [0,1] (B,3,h,w) -> features (B,D) in eval mode; (logits, pre-neck features) in train mode."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.arch not in BACKBONES:
            raise InputError(f"unknown model {spec.arch!r} (expected one of {', '.join(BACKBONES)})")
        if spec.activation not in ACTIVATIONS:
            raise InputError(f"unknown activation {spec.activation!r} (expected one of {', '.join(ACTIVATIONS)})")
        if spec.purifier is not None and spec.purifier not in PURIFIERS:
            raise InputError(f"unknown purifier {spec.purifier!r} (expected one of {', '.join(PURIFIERS)})")
        self.spec = spec
        self.preprocess = Preprocess(spec.input_size, spec.mean, spec.std)
        self.backbone = BACKBONES[spec.arch].build(last_stride=spec.last_stride, final_relu=spec.final_relu)
        dim = self.backbone.out_channels
        self.embedding = nn.Linear(dim, spec.embedding_dim) if spec.embedding_dim else None
        dim = spec.embedding_dim or dim
        self.neck = nn.BatchNorm1d(dim) if spec.bnneck else None
        if self.neck is not None:
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift, so the classifier sees a centred feature
        self.activation = ACTIVATIONS[spec.activation]()
        self.classifier = nn.Linear(dim, spec.num_classes, bias=False) if spec.num_classes > 0 else None
        self.feature_dim = dim
        self.purifier = PURIFIERS[spec.purifier]() if spec.purifier is not None else None

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.purifier is not None:
            images = self.purifier(images)
        return self.forward_unpurified(images)

    def forward_unpurified(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The model without its purifier (the whole model when it has none)."""
        pooled = self.backbone(self.preprocess(images)).mean(dim=(2, 3))  # (B, C)
        embedded = self.embedding(pooled) if self.embedding is not None else pooled
        feature = self.neck(embedded) if self.neck is not None else embedded
        feature = self.activation(feature)
        if not self.training:
            return feature
        if self.classifier is None:
            raise RuntimeError("this model has no classifier (num_classes=0): it cannot be trained with softmax")
        return self.classifier(feature), embedded


def model_names() -> list[str]:
    """Names accepted by ``build_model``."""
    return list(BACKBONES)


def build_model(name: str, num_classes: int = 0, **options) -> ReIDModel:
    """Build a re-ID model by name (``model_names()``) with the backbone's input size unless overridden."""
    if name not in BACKBONES:
        raise InputError(f"unknown model {name!r} (expected one of {', '.join(BACKBONES)})")
    options.setdefault("input_size", BACKBONES[name].input_size)
    return ReIDModel(ModelSpec(arch=name, num_classes=num_classes, **options))
