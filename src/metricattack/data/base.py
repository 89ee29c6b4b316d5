"""The re-ID data model shared by every data set format: (path, pid, camid) lists per split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from metricattack.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class Sample(NamedTuple):
    """One image: its path, person id (0 = distractor, -1 = junk) and 0-based camera id."""

    path: str
    pid: int
    camid: int


@dataclass(frozen=True)
class ReIDData:
    """The three splits of a re-ID data set, as torchreid lists them."""

    name: str
    root: Path
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]

    @property
    def num_train_pids(self) -> int:
        """Number of distinct identities in the training split."""
        return len({s.pid for s in self.train})

    def summary(self) -> str:
        """One line per split with image and identity counts."""
        lines = [f"{self.name} at {self.root}"]
        for split in ("train", "query", "gallery"):
            samples = getattr(self, split)
            ids = len({s.pid for s in samples})
            cams = len({s.camid for s in samples})
            lines.append(f"  {split:8s} {len(samples):6d} images {ids:5d} ids {cams:3d} cameras")
        return "\n".join(lines)


def list_images(folder: Path) -> list[Path]:
    """Sorted image files directly in ``folder``; a missing folder or no images is an InputError."""
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (expected a folder of images)")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise InputError(f"{folder}: no images found (expected {', '.join(IMAGE_EXTENSIONS)} files)")
    return images


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image as a float tensor (3, H, W) in [0, 1], optionally resized to ``size`` = (H, W)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


class ImageDataset(torch.utils.data.Dataset):
    """A torch Dataset over samples: returns (image in [0,1] (3,H,W), pid, camid, index)."""

    def __init__(self, samples: list[Sample], size: tuple[int, int] | None = None) -> None:
        self.samples = list(samples)
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        sample = self.samples[index]
        return read_image(sample.path, self.size), sample.pid, sample.camid, index


def different_sizes(shapes: set[tuple[int, ...]], example: str | None = None) -> InputError:
    """The error for images of different sizes (C,H,W) in one split, naming one of the odd images if known."""
    sizes = ", ".join(sorted(f"{s[1]}x{s[2]}" for s in shapes)[:3]) + (f", e.g. {example}" if example else "")
    return InputError(f"images have different sizes ({sizes}): pass --image-size H W to resize them on load")


def collate_images(batch: list[tuple[torch.Tensor, int, int, int]]) -> tuple[torch.Tensor, ...]:
    """Stack a batch; images of different sizes are an InputError asking for --image-size."""
    images, pids, camids, indices = zip(*batch)
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) > 1:
        raise different_sizes(shapes)
    return torch.stack(images), torch.tensor(pids), torch.tensor(camids), torch.tensor(indices)
