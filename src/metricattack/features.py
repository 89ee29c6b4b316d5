"""Batched feature extraction in inference mode."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from metricattack.data.base import ImageDataset, Sample, collate_images, different_sizes
from metricattack.errors import InputError
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


def worker_errors(loader: torch.utils.data.DataLoader) -> Iterator[tuple[torch.Tensor, ...]]:
    """The loader's batches; an InputError raised in a worker process comes back as its own one-line message.

    (torch re-raises it with the worker's whole traceback in the message.)
    """
    try:
        yield from loader
    except InputError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        raise InputError(lines[-1].split("InputError: ", 1)[-1]) from None


def image_batches(
    samples: list[Sample], batch_size: int, image_size: tuple[int, int] | None, workers: int, progress: bool, desc: str
) -> Iterator[tuple[torch.Tensor, ...]]:
    """``image_loader``'s batches with a progress bar, checked to share one image size across the whole split.

    (The collate step checks each batch; without this, whether mixed sizes were refused would depend on --batch-size.)
    """
    first = None
    batches = worker_errors(image_loader(samples, batch_size, image_size, workers))
    for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
        shape = tuple(batch[0].shape[1:])
        first = first or shape
        if shape != first:
            raise different_sizes({first, shape}, samples[int(batch[3][0])].path)
        yield batch


def check_finite(features: torch.Tensor, model_name: str, what: str) -> torch.Tensor:
    """``features``, or a one-line InputError naming the model when any is NaN or infinite."""
    if not bool(torch.isfinite(features).all()):
        raise InputError(f"model {model_name}: features of the {what} are not finite (NaN or inf); check its weights")
    return features


def read_images(
    samples: list[Sample],
    batch_size: int = 256,
    image_size: tuple[int, int] | None = None,
    workers: int = 0,
    progress: bool = False,
    desc: str = "reading images",
) -> torch.Tensor:
    """All images of ``samples`` as one 8-bit tensor (N,3,H,W), to keep in memory."""
    chunks = [to_8bit(images) for images, _, _, _ in image_batches(samples, batch_size, image_size, workers, progress, desc)]
    return torch.cat(chunks)


def to_8bit(images: torch.Tensor) -> torch.Tensor:
    """Images in [0,1] as uint8, each value rounded to the nearest of the 256 levels."""
    return images.mul(255).round().to(torch.uint8)


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
