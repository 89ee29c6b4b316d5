"""Patches: overlapping boxes share one, the crops through patches equal the crops of the frame, and pasting
changes only the pixels inside the boxes."""

from __future__ import annotations

import numpy as np
import torch

from metricattack.attacks.maps import BoxCrops
from metricattack.tracking.patches import cut_patches, overlap_groups


def test_boxes_that_share_a_pixel_directly_or_through_others_form_one_group():
    corners = np.array([[0, 0, 10, 10], [30, 0, 40, 10], [9, 9, 20, 20], [19, 19, 25, 25], [10, 0, 12, 5]])
    # box 2 touches box 0 at pixel (9, 9) and box 3 at (19, 19); box 4 starts at x 10, where box 0 ends
    assert overlap_groups(corners) == [0, 1, 0, 0, 2]


def test_crops_through_patches_equal_the_crops_of_the_frame_and_pasting_keeps_the_rest():
    frame = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(0))
    corners = np.array([[2, 3, 12, 30], [8, 10, 20, 38], [40, 5, 55, 25]])
    patches = cut_patches(frame, corners, (16, 8))
    assert patches.variable.shape == (2, 3, 35, 18) and patches.regions.tolist() == [[2, 3, 20, 38], [40, 5, 55, 25]]
    whole = BoxCrops(np.concatenate([np.zeros((3, 1), np.int64), corners], axis=1), (16, 8))
    assert torch.equal(patches.crops(patches.variable), whole(frame))
    changed = patches.variable + 0.5 * patches.crops.mask(patches.variable)
    pasted = patches.paste(frame, changed)
    inside = whole.mask(frame).bool().expand_as(frame)
    assert torch.equal(pasted[~inside], frame[~inside]) and torch.allclose(pasted[inside], frame[inside] + 0.5)
