"""Batched feature extraction in inference mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from metricattack.data.base import ImageDataset, Sample, collate_images
from metricattack.evaluation.pipeline import with_flip


@dataclass
class FeatureSet:
    """Features with the identity and camera of each row."""

    features: torch.Tensor  # (N, D)
    pids: torch.Tensor  # (N,)
    camids: torch.Tensor  # (N,)


def image_loader(
    samples: list[Sample], batch_size: int, image_size: tuple[int, int] | None = None, workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over samples in their given order: (images, pids, camids, indices) batches."""
    return torch.utils.data.DataLoader(
        ImageDataset(samples, image_size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_images,
    )


def read_images(
    samples: list[Sample],
    batch_size: int = 256,
    image_size: tuple[int, int] | None = None,
    workers: int = 0,
    progress: bool = False,
    desc: str = "reading images",
) -> torch.Tensor:
    """All images of ``samples`` as one 8-bit tensor (N,3,H,W), to keep in memory."""
    loader = image_loader(samples, batch_size, image_size, workers)
    chunks = [
        images.mul(255).round().to(torch.uint8)
        for images, _, _, _ in tqdm(loader, desc=desc, disable=not progress, leave=False)
    ]
    return torch.cat(chunks)


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
) -> FeatureSet:
    """Run ``model`` (restored to its mode afterwards) over ``samples``; optional flip averaging and L2 norm."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        loader = image_loader(samples, batch_size, image_size, workers)
        for images, _, _, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
            chunks.append(features_of(model, images.to(device), flip).float().cpu())
    finally:
        model.train(was_training)
    features = torch.cat(chunks)
    if normalize:
        features = torch.nn.functional.normalize(features, dim=1)
    return FeatureSet(
        features,
        torch.tensor([s.pid for s in samples]),
        torch.tensor([s.camid for s in samples]),
    )
