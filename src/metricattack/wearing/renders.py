"""The wearer's renders: a differentiable batch for each optimisation step (the compositor's scenes), and
finished images from the numpy renderer for references and evaluation. Every set of renders has its own
stream of seeds, so optimisation, references and evaluation never share a random draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.compositor import SceneBatch, stack_scenes
from metricattack.data.synthetic.render import render_wearer
from metricattack.data.synthetic.texture import AREAS, Texture

# Streams of render seeds (the first key after the run's seed).
OPTIMISE, REFERENCES, UNSEEN, SEEN = 1, 2, 3, 4
BLANK = np.full((1, 1, 3), 0.5, dtype=np.float32)  # a print whose colours the compositor replaces


def stream_seed(seed: int, *keys: int) -> int:
    """A render seed for (seed, keys), independent of every other combination."""
    return int(np.random.SeedSequence([seed % 2**32, *keys]).generate_state(1)[0])


def camera_ids(cameras: Sequence[int], count: int) -> torch.Tensor:
    """(count,) 0-based camera ids of ``render_wearer``'s renders, which go through ``cameras`` in turn."""
    return torch.tensor([cameras[index % len(cameras)] - 1 for index in range(count)])


def training_batch(
    config: SyntheticConfig, pid: int, area: str, cameras: Sequence[int], count: int, seed: int, step: int,
    device: torch.device | str = "cpu",
) -> tuple[SceneBatch, torch.Tensor]:
    """``count`` fresh renders of ``pid`` with a print on ``area`` through ``cameras`` (each with new view, gait,
    pose, distance, light, occluders and noise) as a SceneBatch for ``composite``, and their camera ids."""
    renders = render_wearer(config, pid, Texture(BLANK, AREAS[area]), cameras, count,
                            stream_seed(seed, OPTIMISE, step), fresh_tracks=True)
    return stack_scenes([scene for _, scene in renders], device, torch.float32), camera_ids(cameras, count)


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
