"""Identities, cameras and tracks: each one's fixed look or conditions, drawn from a seeded generator."""

# Each identity has a fixed appearance (proportions, skin, hair, clothes with patterns, accessories);
# each camera has its own viewpoint mix, light, white balance, background, blur, noise and scale.
# Colours come from a small palette so that identities share them, and camera casts make
# cross-camera matching harder. Images of one identity in one camera form a *track* (same walking
# direction and mostly the same view, like consecutive detections in Market-1501), so same-camera
# pairs are easier than cross-camera ones.

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metricattack.data.synthetic.config import (
    GROUNDS,
    HAIR,
    HAIR_WEIGHTS,
    MUTED,
    PALETTE,
    PATTERNS,
    SKIN,
    WALL_KINDS,
    WALLS,
    SyntheticConfig,
    rng_for,
)


@dataclass(frozen=True)
class Appearance:
    """An identity's fixed look (colours are RGB floats in 0-255)."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str  # short, long, shaved
    top: np.ndarray
    top_second: np.ndarray
    pattern: str  # one of PATTERNS
    pattern_scale: float  # stripes / checks per unit of body height
    long_sleeves: bool
    bottom: np.ndarray
    bottom_kind: str  # trousers, shorts, skirt
    shoes: np.ndarray
    backpack: np.ndarray | None
    bag: np.ndarray | None
    bag_side: int  # +1: the bag hangs on the person's right
    hat: np.ndarray | None
    height: float  # fraction of the frame's person height
    build: float  # width multiplier


def make_appearance(rng: np.random.Generator, palette_size: int) -> Appearance:
    """Draw an identity's look: palette colours with a little per-identity jitter."""
    allowed = np.arange(palette_size)
    muted = np.array([i for i in MUTED if i < palette_size]) if any(i < palette_size for i in MUTED) else allowed

    def colour(choices: np.ndarray = allowed) -> np.ndarray:
        return np.clip(PALETTE[rng.choice(choices)] + rng.normal(0, 6, 3), 0, 255).astype(np.float32)

    top = colour()
    second = colour()
    bottom = colour(muted) if rng.random() < 0.6 else colour()
    return Appearance(
        skin=np.clip(SKIN[rng.integers(len(SKIN))] + rng.normal(0, 5, 3), 0, 255).astype(np.float32),
        hair=HAIR[rng.choice(len(HAIR), p=HAIR_WEIGHTS)],
        hair_style=str(rng.choice(["short", "short", "long", "shaved"])),
        top=top,
        top_second=second,
        pattern=str(rng.choice(PATTERNS)),
        pattern_scale=float(rng.uniform(18, 30)),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=bottom,
        bottom_kind=str(rng.choice(["trousers", "trousers", "trousers", "shorts", "skirt"])),
        shoes=colour() * 0.7 if rng.random() < 0.5 else PALETTE[rng.choice([0, 1, 9])].copy(),
        backpack=colour() if rng.random() < 0.3 else None,
        bag=colour() if rng.random() < 0.2 else None,
        bag_side=int(rng.choice([-1, 1])),
        hat=colour() if rng.random() < 0.15 else None,
        height=float(rng.uniform(0.88, 1.0)),
        build=float(rng.uniform(0.85, 1.15)),
    )


@dataclass(frozen=True)
class Camera:
    """A camera's fixed conditions."""

    views: np.ndarray  # probabilities of front, back, side
    gain: float
    white_balance: np.ndarray  # (3,) per-channel gain
    saturation: float
    light: float  # -1..1: which side of the body is lit
    wall: np.ndarray
    wall_kind: str
    ground: np.ndarray
    horizon: float  # fraction of the height where the wall meets the ground
    texture_scale: float
    blur: float  # Gaussian sigma in pixels at 128 rows
    resolution: float  # fraction of the output size the camera really resolves
    noise: float
    scale: float  # person height as a fraction of the image height


def make_camera(rng: np.random.Generator, kind: int, strength: float, noise: float) -> Camera:
    """Draw a camera's conditions; ``strength`` scales its colour cast and light."""
    return Camera(
        views=rng.dirichlet([1.2, 1.2, 1.0]),
        gain=float(1 + strength * rng.uniform(-0.28, 0.22)),
        white_balance=(1 + strength * rng.uniform(-0.14, 0.14, size=3)).astype(np.float32),
        saturation=float(1 + strength * rng.uniform(-0.4, 0.12)),
        light=float(rng.uniform(-1, 1)),
        wall=np.clip(WALLS[rng.integers(len(WALLS))] + rng.normal(0, 12, 3), 0, 255).astype(np.float32),
        wall_kind=WALL_KINDS[kind % len(WALL_KINDS)],
        ground=np.clip(GROUNDS[rng.integers(len(GROUNDS))] + rng.normal(0, 10, 3), 0, 255).astype(np.float32),
        horizon=float(rng.uniform(0.5, 0.78)),
        texture_scale=float(rng.uniform(0.8, 1.3)),
        blur=float(rng.uniform(0.0, 1.0)),
        resolution=float(rng.uniform(0.6, 1.0)),
        noise=float(noise * rng.uniform(0.5, 1.5)),
        scale=float(rng.uniform(0.8, 0.93)),
    )


def make_cameras(config: SyntheticConfig) -> list[Camera]:
    """The configuration's cameras (background kinds spread over the cameras)."""
    kinds = rng_for(config.seed, 2).permutation(len(WALL_KINDS))
    return [
        make_camera(rng_for(config.seed, 2, c), int(kinds[c % len(kinds)]), config.camera_cast, config.noise)
        for c in range(config.cameras)
    ]


@dataclass(frozen=True)
class Track:
    """One identity passing one camera: its usual view, walking direction and where it walks."""

    view: int
    facing: int  # +1 / -1: which way a side view faces
    offset: float  # background pan, in pixels
    scale: float


def make_track(rng: np.random.Generator, camera: Camera) -> Track:
    """Draw the track of an identity in a camera."""
    return Track(
        view=int(rng.choice(3, p=camera.views)),
        facing=int(rng.choice([-1, 1])),
        offset=float(rng.uniform(0, 1000)),
        scale=float(rng.uniform(0.95, 1.05)),
    )
