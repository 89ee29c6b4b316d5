"""Differentiable maps from an optimised variable to model inputs, for attacks whose variable is not the
model's input image: the pixels of whole frames reach a re-ID model as resized crops of boxes.

A map is a callable ``variable (B,...) -> inputs (N,C,h,w)`` with ``owners`` (N,): the variable row each
input comes from, so an attack can sum its inputs' losses per row (``MetricAttack.perturb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F


class InputMap(Protocol):
    """A differentiable map from the optimised variable to model inputs."""

    owners: torch.Tensor  # (N,) long: the variable row of each model input

    def __call__(self, variable: torch.Tensor) -> torch.Tensor:
        """The model inputs (N,C,h,w) of the variable (B,...)."""
        ...


class BoxCrops:
    """Crops of boxes in frames, each resized to the model's input size (bilinear, antialiased when shrunk).

    ``boxes`` (N,5): ``frame, x1, y1, x2, y2`` with integer pixel corners, x2 and y2 exclusive, the frame a
    row of the variable (B,C,H,W). The crop is ``frames[frame, :, y1:y2, x1:x2]``, so the gradient reaches
    exactly the pixels inside the box; ``mask`` is the union of the boxes, the pixels an attack may change.
    """

    def __init__(self, boxes: torch.Tensor | Sequence[Sequence[int]], size: tuple[int, int], antialias: bool = True) -> None:
        boxes = torch.as_tensor(boxes, dtype=torch.long).reshape(-1, 5)
        frames, x1, y1, x2, y2 = boxes.unbind(dim=1)
        if (frames < 0).any() or (x1 < 0).any() or (y1 < 0).any() or (x2 <= x1).any() or (y2 <= y1).any():
            raise ValueError(f"boxes must be frame, x1, y1, x2, y2 with 0 <= x1 < x2 and 0 <= y1 < y2, got {boxes.tolist()}")
        self.boxes = boxes
        self.size = (int(size[0]), int(size[1]))
        self.antialias = antialias
        self.owners = frames.clone()

    def __repr__(self) -> str:
        return f"BoxCrops(boxes={len(self.boxes)}, size={self.size}, antialias={self.antialias})"

    def __call__(self, variable: torch.Tensor) -> torch.Tensor:  # (B,C,H,W) -> (N,C,h,w)
        height, width = variable.shape[-2:]
        if len(self.boxes) and (int(self.owners.max()) >= len(variable) or int(self.boxes[:, 3].max()) > width
                                or int(self.boxes[:, 4].max()) > height):  # fmt: skip
            raise ValueError(f"a box lies outside the frames {tuple(variable.shape)}")
        crops = [
            F.interpolate(variable[frame : frame + 1, :, y1:y2, x1:x2], size=self.size, mode="bilinear",
                          align_corners=False, antialias=self.antialias and self.shrinks(y2 - y1, x2 - x1))  # fmt: skip
            for frame, x1, y1, x2, y2 in self.boxes.tolist()
        ]
        if not crops:
            return variable.new_zeros((0, variable.shape[1], *self.size))
        return torch.cat(crops)

    def shrinks(self, height: int, width: int) -> bool:
        """Whether a crop of this size is made smaller along an axis: antialiasing changes only those (and its
        kernel is slower), so a crop only enlarged takes plain bilinear interpolation."""
        return height > self.size[0] or width > self.size[1]

    def mask(self, variable: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) of the variable's dtype: 1 inside any box of the frame, 0 elsewhere."""
        union = variable.new_zeros((variable.shape[0], 1, *variable.shape[-2:]))
        for frame, x1, y1, x2, y2 in self.boxes.tolist():
            union[frame, :, y1:y2, x1:x2] = 1
        return union
