"""Reading images from disk in batches, and the two conversions between 8-bit and [0,1] images."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from metricattack.data.base import ImageDataset, Sample, collate_images, different_sizes
from metricattack.errors import InputError


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




def as_fraction(images: torch.Tensor) -> torch.Tensor:
    """Stored images as float in [0,1] (8-bit ones divided by 255)."""
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images in [0,1] rounded to 8 bits, as saving them as PNG would (still float)."""
    return as_fraction(to_8bit(images))
