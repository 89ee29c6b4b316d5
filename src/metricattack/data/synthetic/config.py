"""Synthetic data options (``SyntheticConfig``), the colour palettes, and the seeded generators."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from metricattack.errors import InputError

RENDER_VERSION = 3  # bump when rendering or the split plan changes: cached trees are keyed by it

# Clothing colours: identities draw from the first ``palette_size`` of these, so they share colours.
PALETTE = np.array(
    [
        (28, 28, 32), (232, 232, 226), (125, 125, 130), (38, 52, 105), (190, 38, 40), (50, 100, 190),
        (50, 130, 65), (228, 196, 52), (178, 158, 115), (118, 76, 44), (226, 148, 172), (72, 102, 140),
        (228, 120, 40), (112, 52, 138), (112, 176, 214), (108, 28, 42),
    ],
    dtype=np.float32,
)  # fmt: skip
MUTED = (0, 2, 3, 8, 9, 11)  # black, grey, navy, khaki, brown, denim: the usual trouser colours
SKIN = np.array([(242, 206, 178), (226, 178, 140), (196, 140, 100), (150, 100, 66), (98, 64, 42)], dtype=np.float32)
HAIR = np.array(
    [(22, 18, 16), (60, 40, 26), (112, 76, 44), (196, 160, 100), (170, 170, 170), (128, 50, 30)], dtype=np.float32
)
HAIR_WEIGHTS = np.array([0.34, 0.26, 0.14, 0.1, 0.08, 0.08])
WALLS = np.array(
    [(150, 150, 145), (150, 84, 64), (88, 108, 128), (204, 188, 160), (64, 100, 58), (78, 78, 84), (180, 176, 190)],
    dtype=np.float32,
)  # concrete, brick, glass, sandstone, hedge, dark, painted
GROUNDS = np.array([(96, 96, 100), (172, 162, 146), (160, 104, 84), (92, 128, 74), (130, 130, 120)], dtype=np.float32)
WALL_KINDS = ("bricks", "panels", "windows", "plain")
VIEWS = ("front", "back", "side")
PATTERNS = ("plain", "plain", "stripes", "checks", "logo", "jacket", "twotone")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to render: identities, cameras, image size, seed, and a few difficulty knobs.

    train_ids: identities in ``bounding_box_train`` (pids 1..train_ids);
    test_ids: identities in ``query`` and ``bounding_box_test`` (the next test_ids pids);
    cameras: number of cameras (2-6, the Market-1501 layout), each identity is seen by 2-4 of them;
    height, width: image size in pixels;
    seed: everything random derives from it (same config, same bytes);
    palette_size: how many clothing colours identities draw from (2-16; fewer: more shared colours);
    occlusion: probability that an image has an occluder (an object, a pole or another passer-by);
    camera_cast: strength of each camera's illumination, white balance and saturation change (0: none);
    noise: standard deviation of the sensor noise, as a fraction of 1 (each camera scales it by 0.5-1.5).
    """

    train_ids: int = 300
    test_ids: int = 200
    cameras: int = 6
    height: int = 128
    width: int = 64
    seed: int = 0
    palette_size: int = 12
    occlusion: float = 0.25
    camera_cast: float = 1.0
    noise: float = 0.03

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise an InputError naming the first option out of range."""
        if not 2 <= self.cameras <= 6:
            raise InputError(f"--cameras must be between 2 and 6 (the Market-1501 layout), got {self.cameras}")
        for name in ("train_ids", "test_ids"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.train_ids + self.test_ids > 1500:
            total = self.train_ids + self.test_ids
            raise InputError(f"--train-ids plus --test-ids must be at most 1500 (Market-1501 pids), got {total}")
        for name in ("height", "width"):
            if getattr(self, name) < 16:
                raise InputError(f"--{name} must be at least 16 pixels, got {getattr(self, name)}")
        if not 2 <= self.palette_size <= len(PALETTE):
            raise InputError(f"palette_size must be between 2 and {len(PALETTE)}, got {self.palette_size}")
        if not 0 <= self.occlusion <= 1:
            raise InputError(f"occlusion must be a probability between 0 and 1, got {self.occlusion}")
        if not 0 <= self.camera_cast <= 2:
            raise InputError(f"camera_cast must be between 0 and 2, got {self.camera_cast}")
        if not 0 <= self.noise <= 0.3:
            raise InputError(f"noise must be between 0 and 0.3 (a fraction of the intensity range), got {self.noise}")

    @property
    def key(self) -> str:
        """A short hash of every field and the render version: the cache folder's name."""
        text = json.dumps({**asdict(self), "render_version": RENDER_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, keys): rendering does not depend on order or workers."""
    return np.random.default_rng(np.random.SeedSequence([seed % 2**32, *[k % 2**32 for k in keys]]))
