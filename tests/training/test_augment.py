"""Batch augmentations: shape and range kept, flip is an involution, erasing is one rectangle, seeded."""

from __future__ import annotations

import pytest
import torch

from metricattack.errors import InputError
from metricattack.models.preprocess import IMAGENET_MEAN
from metricattack.training.augment import TrainAugment, default_pad, random_erase, random_flip, random_pad_crop

IMAGES = torch.rand(8, 3, 32, 16, generator=torch.Generator().manual_seed(0))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("augment", [TrainAugment(), TrainAugment(erase_p=1.0, erase_fill="mean"), TrainAugment(pad=4)])
def test_shape_range_and_same_seed_same_output(augment):
    first = augment(IMAGES, seeded(0))
    assert first.shape == IMAGES.shape and first.dtype == IMAGES.dtype
    assert 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, augment(IMAGES, seeded(0)))
    assert not torch.equal(first, augment(IMAGES, seeded(1)))
    assert torch.equal(IMAGES, torch.rand(8, 3, 32, 16, generator=seeded(0)))  # the input is untouched


def test_flip_twice_with_the_same_decisions_is_the_identity():
    once = random_flip(IMAGES, seeded(3))
    flipped = [i for i in range(len(IMAGES)) if not torch.equal(once[i], IMAGES[i])]
    assert 0 < len(flipped) < len(IMAGES)
    assert torch.equal(once[flipped], IMAGES[flipped].flip(-1))
    assert torch.equal(random_flip(once, seeded(3)), IMAGES)
    only_flip = TrainAugment(flip=True, pad=0, erase_p=0.0)
    assert torch.equal(only_flip(only_flip(IMAGES, seeded(5)), seeded(5)), IMAGES)


def test_pad_crop_is_a_shifted_window_of_the_zero_padded_image():
    pad = 3
    cropped = random_pad_crop(IMAGES, seeded(0), pad)
    padded = torch.nn.functional.pad(IMAGES, (pad, pad, pad, pad))
    for image, original in zip(cropped, padded):
        windows = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(image, original[:, dy : dy + 32, dx : dx + 16])]  # fmt: skip
        assert windows
    assert random_pad_crop(IMAGES, seeded(0), 0) is IMAGES
    assert default_pad(256) == 10 and default_pad(32) == 1 and default_pad(384) == 15


@pytest.mark.parametrize("fill", ["random", "mean"])
def test_erasing_changes_only_one_rectangle(fill):
    images = torch.full((20, 3, 32, 16), -1.0)  # a value erasing never writes
    erased = random_erase(images, seeded(0), p=1.0, fill=fill)
    for image in erased:
        changed = (image != -1).all(dim=0)  # (H,W); a pixel is erased in every channel or in none
        assert torch.equal(changed, (image != -1).any(dim=0))
        rows, cols = changed.nonzero(as_tuple=True)
        assert len(rows) > 0
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert changed[top:bottom, left:right].all() and changed.sum() == (bottom - top) * (right - left)
        assert 0.02 * 32 * 16 * 0.8 <= changed.sum() <= 0.4 * 32 * 16 * 1.2  # area 2-40 %, up to rounding
        if fill == "mean":
            box = image[:, top:bottom, left:right]
            assert torch.allclose(box, torch.tensor(IMAGENET_MEAN)[:, None, None].expand_as(box))


def test_erasing_probability_is_per_image():
    erased = random_erase(IMAGES, seeded(0), p=0.5)
    changed = [not torch.equal(a, b) for a, b in zip(erased, IMAGES)]
    assert any(changed) and not all(changed)
    assert torch.equal(random_erase(IMAGES, seeded(0), p=0.0), IMAGES)


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match=r"--erase-p must be in \[0, 1\], got 1.5"):
        TrainAugment(erase_p=1.5)
    with pytest.raises(InputError, match="unknown erase fill 'zeros'"):
        TrainAugment(erase_fill="zeros")
    with pytest.raises(InputError, match="padding must be at least 0"):
        TrainAugment(pad=-1)
