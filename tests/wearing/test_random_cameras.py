"""Camera randomisation in the print's optimisation: the extra renders go through new cameras, not the
training ones, leave the training renders as they were, and the same seed draws the same renders."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metricattack.data.synthetic.compositor import composite
from metricattack.data.synthetic.identities import make_cameras
from metricattack.errors import InputError
from metricattack.wearing.renders import RANDOM_CAMERAS, random_cameras, stream_seed, training_batch
from metricattack.wearing.setting import WearSetting
from conftest import TINY

WEARER = TINY.train_ids + 1
TRAIN = (1, 2)
PRINT = torch.rand((3, 8, 8), generator=torch.Generator().manual_seed(0))


def test_random_renders_go_through_new_cameras():
    batch, ids = training_batch(TINY, WEARER, "top", TRAIN, 4, seed=7, step=3, random=3)
    plain, plain_ids = training_batch(TINY, WEARER, "top", TRAIN, 4, seed=7, step=3)
    assert torch.equal(composite(PRINT, batch)[:4], composite(PRINT, plain))  # the training renders are untouched
    assert ids.tolist() == plain_ids.tolist() + [TINY.cameras, TINY.cameras + 1, TINY.cameras + 2]
    drawn = random_cameras(TINY, 3, stream_seed(7, RANDOM_CAMERAS, 3, 0))
    # a scene's saturation is its camera's, untouched by the per-image flicker
    assert batch.saturation[4:].tolist() == pytest.approx([camera.saturation for camera in drawn])
    known = {round(camera.saturation, 6) for camera in make_cameras(TINY)}
    assert not known & {round(camera.saturation, 6) for camera in drawn}
    images = composite(PRINT, batch)
    assert all(not torch.equal(images[4 + k], images[j]) for k in range(3) for j in range(4))


def test_the_same_seed_draws_the_same_random_renders():
    def images(seed: int, step: int) -> torch.Tensor:
        return composite(PRINT, training_batch(TINY, WEARER, "top", TRAIN, 2, seed=seed, step=step, random=2)[0])[2:]

    assert torch.equal(images(5, 0), images(5, 0))
    assert not torch.equal(images(5, 0), images(5, 1))  # each step its own cameras
    assert not torch.equal(images(5, 0), images(6, 0))


def test_a_negative_count_is_refused():
    with pytest.raises(InputError, match="--random-cameras"):
        replace(WearSetting(), random_cameras=-1).validate(6)
