"""The attacked part of a frame as small patches: boxes that overlap form a group, each group's bounding
region is one row of the optimised variable (padded to the largest), so an attack's steps and projections
sweep only the pixels around the attacked people, not the whole frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metricattack.attacks.maps import BoxCrops


def overlap_groups(corners: np.ndarray) -> list[int]:
    """The group (0, 1, ...) of each box (N,4) ``x1, y1, x2, y2``: boxes that share a pixel, directly or through
    others, are in one group; groups are numbered by their first box."""
    parent = list(range(len(corners)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(corners)):
        for j in range(i + 1, len(corners)):
            a, b = corners[i], corners[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                parent[root(j)] = root(i)
    roots = [root(i) for i in range(len(corners))]
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [numbers[r] for r in roots]


@dataclass
class Patches:
    """The groups' regions of a frame stacked as (G,C,h,w), their crops, and where each region lies in the frame."""

    variable: torch.Tensor  # (G,C,h,w), zero beyond each region
    crops: BoxCrops  # the boxes, in the order given, in their group's patch
    regions: np.ndarray  # (G,4) x1, y1, x2, y2 of each group in the frame

    def paste(self, frame: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """A copy of ``frame`` (1,C,H,W) with the pixels inside the boxes taken from ``patches`` (G,C,h,w)."""
        pasted = frame.clone()
        inside = self.crops.mask(patches).bool()  # (G,1,h,w)
        for row, (x1, y1, x2, y2) in enumerate(self.regions.tolist()):
            height, width = y2 - y1, x2 - x1
            target = pasted[0, :, y1:y2, x1:x2]
            keep = inside[row, :, :height, :width].expand_as(target)
            target[keep] = patches[row, :, :height, :width][keep]
        return pasted


def cut_patches(frame: torch.Tensor, corners: np.ndarray, size: tuple[int, int]) -> Patches:
    """The patches of the boxes ``corners`` (N,4) of ``frame`` (1,C,H,W), with crops resized to ``size``."""
    groups = np.asarray(overlap_groups(corners))
    regions = np.stack([np.concatenate([corners[groups == g, :2].min(axis=0), corners[groups == g, 2:].max(axis=0)])
                        for g in range(groups.max() + 1)])  # fmt: skip
    height, width = int((regions[:, 3] - regions[:, 1]).max()), int((regions[:, 2] - regions[:, 0]).max())
    variable = frame.new_zeros((len(regions), frame.shape[1], height, width))
    for row, (x1, y1, x2, y2) in enumerate(regions.tolist()):
        variable[row, :, : y2 - y1, : x2 - x1] = frame[0, :, y1:y2, x1:x2]
    origins = regions[groups][:, :2]
    boxes = np.concatenate([groups[:, None], corners - np.concatenate([origins, origins], axis=1)], axis=1)
    return Patches(variable, BoxCrops(torch.from_numpy(boxes), size), regions)
