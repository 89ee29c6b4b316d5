"""Batch augmentations on images in [0,1]: flip, pad-and-crop, random erasing; reproducible by generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class TrainAugment:
    """Random horizontal flip (p=0.5), zero padding + random crop back to size, random erasing
    (Zhong et al.: p, area 2-40 %, aspect 0.3-3.3, filled with uniform noise). ``pad`` defaults to
    10 pixels at 256 rows, scaled with the image height."""

    def __init__(self, flip: bool = True, pad: int | None = None, erase_p: float = 0.5) -> None:
        self.flip = flip
        self.pad = pad
        self.erase_p = erase_p

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = images.clone()
        n, _, h, w = images.shape
        if self.flip:
            flipped = torch.rand(n, generator=generator) < 0.5
            images[flipped] = images[flipped].flip(-1)
        pad = self.pad if self.pad is not None else max(1, round(10 * h / 256))
        if pad > 0:
            padded = F.pad(images, (pad, pad, pad, pad))
            offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).tolist()
            images = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])
        for i in range(n):
            if torch.rand(1, generator=generator).item() >= self.erase_p:
                continue
            for _ in range(10):  # torchvision's RandomErasing retries until the box fits
                area = h * w * (0.02 + 0.38 * torch.rand(1, generator=generator).item())
                aspect = math.exp(math.log(0.3) + (math.log(1 / 0.3) - math.log(0.3)) * torch.rand(1, generator=generator).item())
                eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if 0 < eh < h and 0 < ew < w:
                    y = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
                    x = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
                    images[i, :, y : y + eh, x : x + ew] = torch.rand(images.shape[1], eh, ew, generator=generator)
                    break
        return images
