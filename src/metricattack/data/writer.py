"""Write image tensors back to disk as PNGs, mirroring the data set's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metricattack.system.atomic import atomic_write
from metricattack.data.base import Sample
from metricattack.data.images import to_8bit


def relative_path(sample: Sample, root: Path) -> Path:
    """The sample's path relative to the data root (its base name if it lies elsewhere)."""
    path = Path(sample.path)
    try:
        return path.resolve().relative_to(Path(root).resolve())
    except ValueError:
        return Path(path.name)


def to_pil(image: torch.Tensor) -> Image.Image:
    """An image (3,H,W) in [0,1] as an 8-bit PIL image."""
    array = to_8bit(image.clamp(0, 1)).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def save_png(image: torch.Tensor, path: Path) -> Path:
    """Save one image (3,H,W) in [0,1] as an 8-bit PNG, atomically."""
    pil = to_pil(image)
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def write_images(images: torch.Tensor, samples: list[Sample], root: Path, out_dir: Path) -> list[Path]:
    """Save images (N,3,H,W) in [0,1] as PNGs at ``out_dir``/<path relative to root>.png."""
    return [
        save_png(image, (out_dir / relative_path(sample, root)).with_suffix(".png"))
        for image, sample in zip(images, samples)
    ]
