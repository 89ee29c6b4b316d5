"""The model's input pipeline as one differentiable module: resize inside the graph, then normalise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """Map images in [0,1] at any size to the model's input: bilinear resize to (H, W), then (x - mean) / std.

    Attacks perturb the stored images; because the resize is part of the graph (as in the paper's
    code) gradients flow back to the stored resolution.
    """

    def __init__(self, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B,3,h,w) in [0,1] -> (B,3,H,W)
        if tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}"
