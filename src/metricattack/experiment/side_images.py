"""One side (query or gallery) of a data set for a campaign: labels in memory, images read from disk when needed.

Only pids and camids are held for the whole side; images are read by index, a chunk at a time, so memory
does not grow with the gallery beyond its features and labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

from metricattack.data.base import Sample, different_sizes
from metricattack.errors import InputError
from metricattack.data.images import read_images


def has_match(pids: torch.Tensor, other_pids: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which of ``pids`` appear among ``other_pids`` (the images an attack can move away from
    their true matches); distractors and junk (pid <= 0) never."""
    return torch.isin(pids, other_pids) & (pids > 0)


def stored_shape(samples: list[Sample], image_size: tuple[int, int] | None) -> tuple[int, int, int]:
    """(3,H,W) of a split's images as read: ``image_size`` when resizing, else the one size every file
    has (read from the headers only); mixed sizes are the one-line error asking for --image-size."""
    if image_size is not None:
        return (3, *image_size)
    shapes: dict[tuple[int, int, int], str] = {}
    for sample in samples:
        try:
            with Image.open(sample.path) as image:
                shapes.setdefault((3, image.height, image.width), str(sample.path))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise InputError(f"{sample.path}: cannot read image ({exc.__class__.__name__}: {exc})") from None
        if len(shapes) > 1:
            raise different_sizes(set(shapes), str(sample.path))
    return next(iter(shapes))


@dataclass
class SideImages:
    """A side's samples with pids and camids; ``read(indices)`` gives their 8-bit images (n,3,H,W)."""

    samples: list[Sample]
    pids: torch.Tensor  # (N,)
    camids: torch.Tensor  # (N,)
    shape: tuple[int, int, int]  # (3,H,W) of every image as read
    batch_size: int = 64
    image_size: tuple[int, int] | None = None
    workers: int = 0

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, indices: torch.Tensor | range | None = None) -> torch.Tensor:
        """The 8-bit images (n,3,H,W) of the samples at ``indices`` (default: all), in that order."""
        chosen = self.samples if indices is None else [self.samples[int(i)] for i in indices]
        if not chosen:
            return torch.empty((0, *self.shape), dtype=torch.uint8)
        images = read_images(chosen, self.batch_size, self.image_size, self.workers)
        if tuple(images.shape[1:]) != self.shape:
            raise different_sizes({self.shape, tuple(images.shape[1:])}, str(chosen[0].path))
        return images

    @property
    def images(self) -> torch.Tensor:
        """Every image of the side (N,3,H,W) uint8, read now: for small sides and tests only."""
        return self.read()


def load_side(samples: list[Sample], batch_size: int, image_size: tuple[int, int] | None, workers: int) -> SideImages:
    """A split's side, with its image size checked over every file (headers only) before any work."""
    if not samples:
        raise InputError("no images in this split (expected a non-empty query and gallery)")
    return SideImages(
        samples,
        torch.tensor([s.pid for s in samples]),
        torch.tensor([s.camid for s in samples]),
        stored_shape(samples, image_size),
        batch_size,
        image_size,
        workers,
    )
