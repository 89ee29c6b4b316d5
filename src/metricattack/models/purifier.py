"""Input purifiers: small image-to-image networks placed in front of a re-ID model (f∘P)."""

from __future__ import annotations

import torch
from torch import nn


class ResidualDenoiser(nn.Module):
    """P(x) = clip(x + g(x), 0, 1), g three 3x3 convolutions with ReLUs; no BatchNorm, so no train/eval difference.

    The last convolution starts at zero, so a fresh purifier is the identity on images in [0,1].
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 3, 3, padding=1),
        )
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) in [0,1] -> same
        return (images + self.residual(images)).clamp(0, 1)


PURIFIERS = {"denoiser": ResidualDenoiser}
