"""Features of images under a model, in batches and in inference mode, checked to be finite."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from metricattack.data.base import Sample
from metricattack.data.images import image_batches
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import with_flip


@dataclass
class FeatureSet:
    """Features with the identity and camera of each row."""

    features: torch.Tensor  # (N, D)
    pids: torch.Tensor  # (N,)
    camids: torch.Tensor  # (N,)


def check_finite(features: torch.Tensor, model_name: str, what: str) -> torch.Tensor:
    """``features``, or a one-line InputError naming the model when any is NaN or infinite."""
    if not bool(torch.isfinite(features).all()):
        raise InputError(f"model {model_name}: features of the {what} are not finite (NaN or inf); check its weights")
    return features


@torch.inference_mode()
def features_of(model: nn.Module, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Features of a batch in [0,1]; with ``flip`` the mean of the image's and its mirror's features."""
    return with_flip(model, flip)(images)


def extract_features(
    model: nn.Module,
    samples: list[Sample],
    device: torch.device,
    batch_size: int = 128,
    flip: bool = False,
    normalize: bool = False,
    image_size: tuple[int, int] | None = None,
    workers: int = 0,
    progress: bool = True,
    desc: str = "features",
    name: str | None = None,
) -> FeatureSet:
    """Run ``model`` (restored to its mode afterwards) over ``samples``; optional flip averaging and L2 norm.

    Non-finite features are an InputError naming the model (``name``, default its architecture).
    """
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for images, _, _, _ in image_batches(samples, batch_size, image_size, workers, progress, desc):
            chunks.append(features_of(model, images.to(device), flip).float().cpu())
    finally:
        model.train(was_training)
    name = name or getattr(getattr(model, "spec", None), "arch", type(model).__name__)
    features = check_finite(torch.cat(chunks), name, f"{desc} images")
    if normalize:
        features = torch.nn.functional.normalize(features, dim=1)
    return FeatureSet(
        features,
        torch.tensor([s.pid for s in samples]),
        torch.tensor([s.camid for s in samples]),
    )
