"""The wearer's renders: a differentiable batch for each optimisation step (the compositor's scenes), and
finished images from the numpy renderer for references and evaluation. Every set of renders has its own
stream of seeds, so optimisation, references and evaluation never share a random draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.compositor import SceneBatch, stack_scenes
from metricattack.data.synthetic.config import WALL_KINDS
from metricattack.data.synthetic.identities import Camera, make_camera
from metricattack.data.synthetic.render import render_wearer
from metricattack.data.synthetic.texture import AREAS, Texture

# Streams of render seeds (the first key after the run's seed).
OPTIMISE, REFERENCES, UNSEEN, SEEN = 1, 2, 3, 4
RANDOM_CAMERAS = 6  # (5 is the contact sheet's, in run.py)
BLANK = np.full((1, 1, 3), 0.5, dtype=np.float32)  # a print whose colours the compositor replaces


def stream_seed(seed: int, *keys: int) -> int:
    """A render seed for (seed, keys), independent of every other combination."""
    return int(np.random.SeedSequence([seed % 2**32, *keys]).generate_state(1)[0])


def camera_ids(cameras: Sequence[int], count: int) -> torch.Tensor:
    """(count,) 0-based camera ids of ``render_wearer``'s renders, which go through ``cameras`` in turn."""
    return torch.tensor([cameras[index % len(cameras)] - 1 for index in range(count)])


def random_cameras(config: SyntheticConfig, count: int, seed: int) -> list[Camera]:
    """``count`` new cameras drawn as the data set's are (``make_camera`` with the configuration's cast and
    noise, any background kind), but from ``seed``: conditions the training cameras never show."""
    rng = np.random.default_rng(seed)
    return [make_camera(rng, int(rng.integers(len(WALL_KINDS))), config.camera_cast, config.noise) for _ in range(count)]


def training_batch(
    config: SyntheticConfig, pid: int, area: str, cameras: Sequence[int], count: int, seed: int, step: int,
    device: torch.device | str = "cpu", random: int = 0,
) -> tuple[SceneBatch, torch.Tensor]:
    """``count`` fresh renders of ``pid`` with a print on ``area`` through ``cameras`` (each with new view, gait,
    pose, distance, light, occluders and noise), then ``random`` more through as many new random cameras
    (``random_cameras``), as a SceneBatch for ``composite``, and their camera ids (the random cameras' ids
    follow the configuration's, one each)."""
    blank = Texture(BLANK, AREAS[area])
    renders = render_wearer(config, pid, blank, cameras, count, stream_seed(seed, OPTIMISE, step), fresh_tracks=True)
    ids = camera_ids(cameras, count)
    if random:
        drawn = random_cameras(config, random, stream_seed(seed, RANDOM_CAMERAS, step, 0))
        renders += render_wearer(config, pid, blank, range(1, random + 1), random, stream_seed(seed, RANDOM_CAMERAS, step, 1),
                                 fresh_tracks=True, camera_set=drawn)  # fmt: skip
        ids = torch.cat([ids, torch.arange(config.cameras, config.cameras + random)])
    return stack_scenes([scene for _, scene in renders], device, torch.float32), ids


def rendered_images(
    config: SyntheticConfig, pid: int, texture: Texture | None, cameras: Sequence[int], per_camera: int, seed: int,
    stream: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, H, W) in [0, 1], camera ids (N,)): ``per_camera`` renders of ``pid`` wearing ``texture``
    (None: his own top) in each camera, by the numpy renderer, with the draws of ``stream``: the same draws
    whatever he wears, so clean and printed images differ only by the print."""
    count = per_camera * len(cameras)
    renders = render_wearer(config, pid, texture, cameras, count, stream_seed(seed, stream), fresh_tracks=True)
    images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in renders]) / 255
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), camera_ids(cameras, count)
