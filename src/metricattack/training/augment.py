"""Batch augmentations on images in [0,1] (B,3,H,W): flip, pad-and-crop, random erasing.

Every random decision is drawn from the ``torch.Generator`` passed in, per image, so a batch is
augmented the same way for the same generator state whatever the device of the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from metricattack.errors import InputError
from metricattack.models.preprocess import IMAGENET_MEAN

ERASE_FILLS = ("random", "mean")
ERASE_ATTEMPTS = 10  # torchvision's RandomErasing gives up after 10 boxes that do not fit


def _uniform(shape: Sequence[int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0,1) float32 numbers drawn by ``generator`` (on its own device), moved to ``device``."""
    return torch.rand(tuple(shape), generator=generator, device=generator.device).to(device)


def default_pad(height: int) -> int:
    """The crop padding for images of this height: 10 pixels at 256 rows, scaled: round(10 H / 256)."""
    return round(10 * height / 256)


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flipped = _uniform((images.shape[0],), generator, images.device) < p  # (B,)
    return torch.where(flipped[:, None, None, None], images.flip(-1), images)


def random_pad_crop(images: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Zero-pad each side by ``pad`` pixels, then crop each image back to (H,W) at a random offset."""
    if pad == 0:
        return images
    n, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))  # (B,C,H+2p,W+2p)
    offsets = (_uniform((n, 2), generator, images.device) * (2 * pad + 1)).long().clamp(max=2 * pad)  # (B,2)
    rows = (offsets[:, 0, None] + torch.arange(height, device=images.device))[:, None, :, None]  # (B,1,H,1)
    cols = (offsets[:, 1, None] + torch.arange(width, device=images.device))[:, None, None, :]  # (B,1,1,W)
    batch = torch.arange(n, device=images.device)[:, None, None, None]  # (B,1,1,1)
    channel = torch.arange(channels, device=images.device)[None, :, None, None]  # (1,C,1,1)
    return padded[batch, channel, rows, cols]  # (B,C,H,W)


def random_erase(
    images: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 3.33),
    fill: str = "random",
) -> torch.Tensor:
    """Random erasing (Zhong et al.) with torchvision's ``RandomErasing`` rules, per image.

    With probability ``p`` an image gets one rectangle of area s H W and aspect h/w = r, with s uniform
    in ``scale`` and log r uniform in log ``ratio``; sides are rounded, and a box that does not fit
    (h >= H or w >= W) is drawn again, up to 10 times, after which the image is left as it is. The box
    is filled with uniform [0,1) noise (``fill="random"``) or the ImageNet mean colour (``"mean"``,
    zero after the usual normalisation).
    """
    if fill not in ERASE_FILLS:
        raise InputError(f"unknown erase fill {fill!r} (expected one of {', '.join(ERASE_FILLS)})")
    n, _, height, width = images.shape
    device = images.device
    apply = _uniform((n,), generator, device) < p  # (B,)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * _uniform((n, ERASE_ATTEMPTS), generator, device))
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = (low + (high - low) * _uniform((n, ERASE_ATTEMPTS), generator, device)).exp()  # h / w
    box_h = (area * aspect).sqrt().round().long()  # (B,attempts)
    box_w = (area / aspect).sqrt().round().long()
    fits = (box_h < height) & (box_w < width)
    first = fits.long().argmax(dim=1, keepdim=True)  # the first box that fits, (B,1)
    apply &= fits.any(dim=1)
    box_h, box_w = box_h.gather(1, first)[:, 0], box_w.gather(1, first)[:, 0]  # (B,)
    top = (_uniform((n,), generator, device) * (height - box_h + 1)).long().clamp(max=height - box_h)
    left = (_uniform((n,), generator, device) * (width - box_w + 1)).long().clamp(max=width - box_w)
    rows = torch.arange(height, device=device)[None, :, None]  # (1,H,1)
    cols = torch.arange(width, device=device)[None, None, :]  # (1,1,W)
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + box_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + box_w)[:, None, None])
        & apply[:, None, None]
    )  # (B,H,W)
    if fill == "random":
        values = _uniform(images.shape, generator, device).to(images.dtype)
    else:
        values = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=device)[None, :, None, None]
    return torch.where(inside[:, None], values, images)


class TrainAugment:
    """The re-ID training augmentation (BoT): random flip, pad + random crop, random erasing.

    ``pad=None`` uses ``default_pad(H)`` (10 pixels at 256 rows); ``pad=0`` or ``flip=False`` or
    ``erase_p=0`` turn that step off; ``erase_fill`` is ``random_erase``'s ``fill``.
    """

    def __init__(
        self, flip: bool = True, pad: int | None = None, erase_p: float = 0.5, erase_fill: str = "random"
    ) -> None:
        if pad is not None and pad < 0:
            raise InputError(f"the crop padding must be at least 0 pixels, got {pad}")
        if not 0 <= erase_p <= 1:
            raise InputError(f"--erase-p must be in [0, 1], got {erase_p}")
        if erase_fill not in ERASE_FILLS:
            raise InputError(f"unknown erase fill {erase_fill!r} (expected one of {', '.join(ERASE_FILLS)})")
        self.flip = flip
        self.pad = pad
        self.erase_p = erase_p
        self.erase_fill = erase_fill

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment images (B,3,H,W) in [0,1]: same shape and range; same generator state, same output."""
        if self.flip:
            images = random_flip(images, generator)
        images = random_pad_crop(images, generator, default_pad(images.shape[2]) if self.pad is None else self.pad)
        if self.erase_p > 0:
            images = random_erase(images, generator, self.erase_p, fill=self.erase_fill)
        return images

    def __repr__(self) -> str:
        return f"TrainAugment(flip={self.flip}, pad={self.pad}, erase_p={self.erase_p}, erase_fill={self.erase_fill!r})"
