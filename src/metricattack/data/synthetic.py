"""Synthetic pedestrians: the embedded default data set, rendered procedurally into a Market-1501 tree.

Each identity has a fixed appearance (proportions, skin, hair, clothes with patterns, accessories);
each camera has its own viewpoint mix, light, white balance, background, blur, noise and scale; each
image adds gait and pose jitter, bounding-box jitter and sometimes an occluder. Colours come from a
small palette so that identities share them, and camera casts make cross-camera matching harder.

Images of one identity in one camera form a *track* (same walking direction and mostly the same
view, like consecutive detections in Market-1501), so same-camera pairs are easier than
cross-camera ones. Every image is rendered from its own random generator, seeded from
(seed, pid, image index): the output does not depend on the order of rendering, and the same
configuration gives the same bytes.

Rendering is vectorised numpy on a 2x supersampled grid: limbs are capsules (points within a radius
of a segment), the head an ellipse, the torso a tapered band, each shaded by its distance to the
axis (a cheap cylinder look), then averaged down to the output size.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import signal
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from metricattack.atomic import atomic_write
from metricattack.data.base import list_images
from metricattack.errors import InputError

RENDER_VERSION = 3  # bump when rendering or the split plan changes: cached trees are keyed by it
SUPERSAMPLE = 2  # render at this multiple of the output size, then average down (anti-aliasing)
JPEG_OPTIONS = {"format": "JPEG", "quality": 95, "subsampling": 0, "optimize": False, "progressive": False}
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
NAME_PATTERN = re.compile(r"^([-\d]+)_c(\d)")

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


# --- identities and cameras -------------------------------------------------------------------
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


# --- drawing ----------------------------------------------------------------------------------
Colour = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]  # RGB, or a function of (U, V)
Point = tuple[float, float]  # (u, v) in body units
Window = tuple[tuple[slice, slice], np.ndarray, np.ndarray]  # pixel slices, U (1, w), V (h, 1)


class Canvas:
    """An RGB float image with a person-centred frame: u across (mirrored by ``facing``), v from the
    head top (0) to the soles (1), both in units of the person's height."""

    def __init__(self, pixels: np.ndarray, cx: float, top: float, person_height: float, facing: int, light: float):
        self.pixels = pixels  # (H, W, 3) float32, drawn in place
        self.cx, self.top, self.ph, self.facing, self.light = cx, top, person_height, facing, light

    def window(self, u0: float, u1: float, v0: float, v1: float) -> Window | None:
        """Pixel slices covering a body-unit box, and the body coordinates of their centres: U (1, w), V (h, 1)."""
        h, w = self.pixels.shape[:2]
        xa, xb = self.cx + self.facing * u0 * self.ph, self.cx + self.facing * u1 * self.ph
        x0, x1 = max(int(np.floor(min(xa, xb))), 0), min(int(np.ceil(max(xa, xb))) + 1, w)
        y0, y1 = max(int(np.floor(self.top + v0 * self.ph)), 0), min(int(np.ceil(self.top + v1 * self.ph)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        u = (np.arange(x0, x1, dtype=np.float32) + 0.5 - self.cx) / self.ph * self.facing
        v = (np.arange(y0, y1, dtype=np.float32) + 0.5 - self.top) / self.ph
        return (slice(y0, y1), slice(x0, x1)), u[None, :], v[:, None]

    def fill(self, where: tuple[slice, slice], mask: np.ndarray, colour: Colour, shading: np.ndarray, u, v) -> None:
        """Paint ``colour`` (RGB, or a function of (U, V) giving (h, w, 3)) times ``shading`` where ``mask``."""
        shape = (v.shape[0], u.shape[1])
        if mask.shape != shape:
            mask = np.broadcast_to(mask, shape)
        shade = (shading if shading.shape == shape else np.broadcast_to(shading, shape))[mask]
        rgb = colour(u, v)[mask] if callable(colour) else colour
        self.pixels[where][mask] = rgb * shade[:, None]

    def lit(self, across: np.ndarray) -> np.ndarray:
        """Side lighting: ``across`` in -1..1 is the position across a part, in body units' direction."""
        return 1 + 0.14 * self.light * self.facing * across

    def capsule(self, a: Point, b: Point, radius: float, colour: Colour, dim: float = 1.0) -> None:
        """A limb: the points within ``radius`` of the segment a-b, shaded like a cylinder."""
        u0, u1, v0, v1 = min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1])
        win = self.window(u0 - radius, u1 + radius, v0 - radius, v1 + radius)
        if win is None:
            return
        where, u, v = win
        du, dv = b[0] - a[0], b[1] - a[1]
        t = np.minimum(np.maximum(((u - a[0]) * du + (v - a[1]) * dv) * (1 / max(du * du + dv * dv, 1e-9)), 0), 1)
        pu, pv = u - a[0] - t * du, v - a[1] - t * dv
        d2 = (pu * pu + pv * pv) / (radius * radius)
        self.fill(where, d2 <= 1, colour, dim * (1 - 0.3 * d2) * self.lit(pu / radius), u, v)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, colour: Colour, dim: float = 1.0, clip=None) -> None:
        """An ellipse, shaded like a ball; ``clip(U, V)`` optionally restricts it."""
        win = self.window(cu - ru, cu + ru, cv - rv, cv + rv)
        if win is None:
            return
        where, u, v = win
        d2 = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
        mask = d2 <= 1 if clip is None else (d2 <= 1) & clip(u, v)
        self.fill(where, mask, colour, dim * (1 - 0.25 * d2) * self.lit((u - cu) / ru), u, v)

    def box(
        self, cu: float, cv: float, hu: float, hv: float, colour: Colour, radius: float = 0.0, dim: float = 1.0
    ) -> None:
        """A rectangle (half sizes hu, hv) with rounded corners, shaded across."""
        win = self.window(cu - hu, cu + hu, cv - hv, cv + hv)
        if win is None:
            return
        where, u, v = win
        radius = min(radius, hu, hv)
        du = np.maximum(np.abs(u - cu) - (hu - radius), 0)
        dv = np.maximum(np.abs(v - cv) - (hv - radius), 0)
        across = (u - cu) / hu
        mask = du * du + dv * dv <= radius * radius if radius > 0 else np.ones((v.shape[0], u.shape[1]), dtype=bool)
        self.fill(where, mask, colour, dim * (1 - 0.2 * across * across) * self.lit(across), u, v)

    def band(self, cu: float, v0: float, v1: float, widths: tuple[Point, ...], colour: Colour, dim: float = 1) -> None:
        """A vertical band between v0 and v1 whose half width follows ``widths`` ((v, half width), ...),
        with rounded top corners: a torso or a skirt."""
        vs, hws = np.array([w[0] for w in widths]), np.array([w[1] for w in widths])
        win = self.window(cu - hws.max(), cu + hws.max(), v0, v1)
        if win is None:
            return
        where, u, v = win
        half = np.interp(v, vs, hws).astype(np.float32)
        across = (u - cu) / half
        mask = (np.abs(across) <= 1) & (v >= v0 + 0.04 * np.abs(across) ** 4) & (v <= v1)
        self.fill(where, mask, colour, dim * (1 - 0.25 * across * across) * self.lit(across), u, v)


def top_colour(look: Appearance, view: str, sleeve: bool = False) -> Colour:
    """The top's colour as a function of body coordinates: its pattern, seen from ``view``."""
    base, second, scale = look.top, look.top_second, look.pattern_scale

    def paint(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        shape = (v.shape[0], u.shape[1])
        if look.pattern == "stripes":
            on = np.floor(v * scale) % 2 == 0
        elif look.pattern == "checks":
            on = (np.floor(v * scale * 0.8) + np.floor((u + 1) * scale * 0.8)) % 2 == 0
        elif look.pattern == "logo" and view == "front" and not sleeve:
            on = ((u / 0.045) ** 2 + ((v - 0.28) / 0.04) ** 2) <= 1
        elif look.pattern == "jacket" and view == "front" and not sleeve:
            on = np.abs(u) < 0.032
        elif look.pattern == "twotone":
            on = v < 0.29
        else:
            on = np.zeros(shape, dtype=bool)
        return np.where(np.broadcast_to(on, shape)[..., None], second, base).astype(np.float32)

    return paint


def render_person(canvas: Canvas, look: Appearance, view: str, rng: np.random.Generator) -> None:
    """Draw a pedestrian in ``view`` (front, back, side facing +u) with gait and pose jitter."""
    side = view == "side"
    build = look.build
    phase = rng.uniform(0, 2 * np.pi)
    stride = rng.uniform(0.22, 0.42)  # leg swing amplitude, radians
    skin, bottom, shoes = look.skin, look.bottom, look.shoes
    top = top_colour(look, view)
    sleeve = top_colour(look, view, sleeve=True)
    hip_v, thigh, shin = 0.5, 0.225, 0.235
    thigh_r, shin_r = 0.042 * build, 0.034 * build
    shoulder_v = 0.19
    shoulder_u = 0.02 if side else 0.092 * build
    bag_u = look.bag_side * (1 if view == "back" else -1)  # where the bag shows across the image
    shadow_box = canvas.window(-0.2, 0.2, 0.96, 1.04)
    if shadow_box is not None:  # a soft shadow on the ground
        where, u, v = shadow_box
        d2 = (u / 0.2) ** 2 + ((v - 1.0) / 0.035) ** 2
        canvas.pixels[where] *= np.where(d2 <= 1, 0.7 + 0.3 * d2, 1.0)[..., None]

    def leg(hip_u: float, swing: float, lift: float, dim: float) -> None:
        knee = (hip_u + thigh * np.sin(swing), hip_v + thigh * np.cos(swing) - lift)
        bend = 0.1 + (0.8 * max(0.0, -swing) if side else 0.0)
        ankle = (knee[0] + shin * np.sin(swing - bend), knee[1] + shin * np.cos(swing - bend) - lift * 0.5)
        trousers = look.bottom_kind == "trousers"
        canvas.capsule((hip_u, hip_v), knee, thigh_r, bottom if trousers else skin, dim)
        canvas.capsule(knee, ankle, shin_r, bottom if trousers else skin, dim)
        if look.bottom_kind == "shorts":
            end = (hip_u + 0.7 * (knee[0] - hip_u), hip_v + 0.7 * (knee[1] - hip_v))
            canvas.capsule((hip_u, hip_v), end, thigh_r + 0.008, bottom, dim)
        forward = 0.022 if side else 0.0
        canvas.ellipse(ankle[0] + forward, ankle[1] + 0.018, 0.055 if side else 0.034, 0.024, shoes, dim * 0.9)

    def arm(shoulder: Point, swing: float, out: float, dim: float) -> None:
        if side:
            elbow = (shoulder[0] + 0.16 * np.sin(swing), shoulder[1] + 0.16 * np.cos(swing))
            fore = swing + 0.25 + 0.3 * max(0.0, swing)
            wrist = (elbow[0] + 0.145 * np.sin(fore), elbow[1] + 0.145 * np.cos(fore))
        else:  # seen from the front or back a swing only foreshortens the arm
            elbow = (shoulder[0] + out * 0.03, shoulder[1] + 0.16 * np.cos(swing))
            wrist = (elbow[0] + out * 0.012, elbow[1] + 0.145 * np.cos(swing * 1.5))
        canvas.capsule(shoulder, elbow, 0.03 * build, skin, dim)
        canvas.capsule(elbow, wrist, 0.025 * build, skin, dim)
        if look.long_sleeves:
            canvas.capsule(shoulder, elbow, 0.031 * build, sleeve, dim * 0.95)
            canvas.capsule(elbow, wrist, 0.027 * build, sleeve, dim * 0.95)
        else:
            mid = (shoulder[0] + 0.55 * (elbow[0] - shoulder[0]), shoulder[1] + 0.55 * (elbow[1] - shoulder[1]))
            canvas.capsule(shoulder, mid, 0.034 * build, sleeve, dim * 0.95)
        canvas.ellipse(wrist[0], wrist[1] + 0.014, 0.022, 0.026, skin, dim)

    def torso() -> None:
        if side:
            widths = ((0.17, 0.05), (0.3, 0.058), (0.42, 0.05), (0.53, 0.056))
            canvas.band(0.008, 0.165, 0.53, tuple((v, w * build) for v, w in widths), top)
        else:
            widths = ((0.17, 0.1), (0.3, 0.092), (0.42, 0.08), (0.53, 0.088))
            canvas.band(0.0, 0.165, 0.53, tuple((v, w * build) for v, w in widths), top)

    def lower_body() -> None:
        if look.bottom_kind == "skirt":
            widths = ((0.47, 0.08), (0.67, 0.12)) if not side else ((0.47, 0.056), (0.67, 0.1))
            canvas.band(0.0, 0.46, 0.67, tuple((v, w * build) for v, w in widths), bottom)
        else:
            canvas.box(0.0, 0.51, (0.055 if side else 0.085) * build, 0.05, bottom, 0.02)

    def head() -> None:
        canvas.capsule((0.0, 0.12), (0.0, 0.18), 0.022, skin)
        hair = look.hair if look.hat is None or look.hair_style == "long" else look.hat
        if look.hair_style == "long" and side:
            canvas.box(-0.012, 0.15, 0.05, 0.09, look.hair, 0.03)
        face_u = 0.014 if side else 0.0
        if view == "back":
            canvas.ellipse(0.0, 0.075, 0.053, 0.07, look.hair if look.hair_style != "shaved" else skin * 0.85)
            if look.hair_style == "long":
                canvas.box(0.0, 0.16, 0.056, 0.09, look.hair, 0.04)
        else:
            canvas.ellipse(0.0, 0.075, 0.055, 0.07, hair if look.hair_style != "shaved" else skin * 0.9)
            canvas.ellipse(face_u, 0.088, 0.048 if not side else 0.044, 0.058, skin)
            if view == "front":
                for eye in (-0.018, 0.018):
                    canvas.ellipse(eye, 0.082, 0.007, 0.006, skin * 0.35)
            else:
                canvas.ellipse(0.05, 0.082, 0.005, 0.006, skin * 0.35)
        if look.hair_style == "shaved" and look.hat is None:
            canvas.ellipse(0.0, 0.07, 0.054, 0.066, look.hair, clip=lambda u, v: v < 0.04)
        if look.hat is not None:
            canvas.ellipse(0.0, 0.06, 0.058, 0.058, look.hat, clip=lambda u, v: v < 0.055)
            if view != "back":
                canvas.box(0.04 if side else 0.0, 0.052, 0.05 if side else 0.06, 0.008, look.hat, 0.0, 0.85)

    def backpack_or_bag(behind: bool) -> None:
        if look.backpack is not None:
            if view == "back" and not behind:
                canvas.box(0.0, 0.32, 0.075 * build, 0.13, look.backpack, 0.03)
                canvas.box(0.0, 0.38, 0.05 * build, 0.045, look.backpack * 0.8, 0.02)
            elif side and not behind:
                canvas.box(-0.075 * build, 0.31, 0.04, 0.13, look.backpack, 0.02)
            elif view == "front" and not behind:
                for strap in (-0.055, 0.055):
                    canvas.capsule((strap * build, 0.17), (strap * build * 1.1, 0.34), 0.011, look.backpack * 0.85)
        if look.bag is not None:
            if not side and not behind:
                canvas.capsule((-bag_u * 0.07 * build, 0.18), (bag_u * 0.1 * build, 0.45), 0.008, look.bag * 0.7)
                canvas.box(bag_u * 0.13 * build, 0.5, 0.045, 0.05, look.bag, 0.015)
            elif side and behind == (look.bag_side == canvas.facing):
                canvas.box(0.0, 0.49, 0.055, 0.05, look.bag, 0.015, 1.0 if not behind else 0.8)

    swing = stride * np.sin(phase)
    if side:
        arm((shoulder_u - 0.01, shoulder_v), swing * 0.8, 0, 0.78)
        backpack_or_bag(behind=True)
        leg(0.0, -swing, 0.0, 0.8)
        lower_body()
        leg(0.0, swing, 0.0, 1.0)
        if look.bottom_kind == "skirt":
            lower_body()
        torso()
        backpack_or_bag(behind=False)
        head()
        arm((shoulder_u, shoulder_v), -swing * 0.8, 0, 1.0)
    else:
        hip_u = 0.048 * build
        lift = 0.025 * np.sin(phase)
        backpack_or_bag(behind=True)
        if look.hair_style == "long" and view == "front":  # hangs behind the shoulders
            canvas.box(0.0, 0.15, 0.064, 0.09, look.hair, 0.03, 0.8)
        leg(-hip_u, 0.04, max(lift, 0.0), 1.0)
        leg(hip_u, -0.04, max(-lift, 0.0), 1.0)
        lower_body()
        torso()
        for side_sign in (-1, 1):
            arm((side_sign * shoulder_u, shoulder_v + 0.01), swing * side_sign, side_sign, 0.95)
        backpack_or_bag(behind=False)
        head()


def background(camera: Camera, track: Track, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A textured wall above a tiled ground plane in the camera's tones, panned along the track. (H, W, 3)"""
    scale = height / 128 * camera.texture_scale
    y = np.arange(height, dtype=np.float32)[:, None] + 0.5
    x = np.arange(width, dtype=np.float32)[None, :] + 0.5 + track.offset * scale + rng.uniform(-3, 3) * scale
    horizon = (camera.horizon + rng.uniform(-0.02, 0.02)) * height
    wall = np.broadcast_to(camera.wall, (height, width, 3)).astype(np.float32)
    if camera.wall_kind == "bricks":
        rows = np.floor(y / (7 * scale))
        cols = np.floor((x + (rows % 2) * 8 * scale) / (16 * scale))
        mortar = ((y % (7 * scale)) < 1.2 * scale) | (((x + (rows % 2) * 8 * scale) % (16 * scale)) < 1.2 * scale)
        brick = 0.9 + 0.2 * np.modf(np.abs(np.sin(rows * 12.9898 + cols * 78.233)) * 43758.5453)[0]
        factor = np.where(mortar, 1.25, brick)
    elif camera.wall_kind == "panels":
        position = (x % (26 * scale)) / (26 * scale)
        factor = np.where(position < 1.5 / 26, 0.6, 0.95 + 0.1 * position) + 0 * y
    elif camera.wall_kind == "windows":
        glass = ((x % (30 * scale)) > 8 * scale) & ((y % (40 * scale)) > 10 * scale) & ((y % (40 * scale)) < 34 * scale)
        factor = np.where(glass, 0.45 + 0.15 * (y % (40 * scale)) / (40 * scale), 1.0)
    else:  # plain, with a darker skirting
        factor = np.where(np.abs(y - horizon + 5 * scale) < 2.5 * scale, 0.65, 1.0) + 0 * x
    wall = wall * (factor * (1.05 - 0.15 * y / height))[..., None]
    depth = np.maximum(y - horizon, 0.5)  # rows below the horizon: nearer ground
    ground = np.broadcast_to(camera.ground, (height, width, 3)).astype(np.float32)
    tile_row = (np.modf(60 * scale / depth + rng.uniform(0, 1))[0] < 0.12) & (depth > 2)
    tile_col = np.modf(((x - width / 2) / depth) * 0.8 / max(camera.texture_scale, 0.5) + 100)[0] < 0.08
    ground = ground * np.where(tile_row | tile_col, 0.82, 1.0)[..., None] * (0.92 + 0.12 * (depth / height))[..., None]
    pixels = np.where((y < horizon)[..., None], wall, ground)
    blotches = rng.normal(0, 10, size=(5, 3, 3)).astype(np.float32)  # low-frequency dirt and light
    blotches = Image.fromarray(np.uint8(np.clip(blotches + 128, 0, 255))).resize((width, height), Image.BICUBIC)
    blotches = np.asarray(blotches)
    return (pixels + blotches.astype(np.float32) - 128).astype(np.float32)


def add_occluder(
    pixels: np.ndarray, rng: np.random.Generator, palette_size: int, light: float, draw_person: Callable[[], None]
) -> None:
    """Something between the camera and the person: an object at the bottom, a pole, or a passer-by."""
    h, w = pixels.shape[:2]
    kind = rng.choice(["object", "pole", "person"], p=[0.35, 0.25, 0.4])
    if kind == "person":
        draw_person()
        return
    colour = PALETTE[rng.integers(palette_size)] * rng.uniform(0.5, 0.95)
    if kind == "object":  # a car, bench or bin in the foreground
        y0 = int(h * rng.uniform(0.68, 0.86))
        x0, x1 = (0, w) if rng.random() < 0.5 else sorted(int(v) for v in rng.uniform(-0.3, 1.3, 2) * w)
        x0, x1 = max(x0, 0), min(max(x1, x0 + w // 3), w)
        rows = np.linspace(1.1, 0.75, h - y0, dtype=np.float32)[:, None, None]
        pixels[y0:, x0:x1] = colour * rows
        pixels[y0 : y0 + max(1, h // 64), x0:x1] = colour * 1.25
    else:  # a pole or a tree trunk
        x0 = int(w * rng.uniform(-0.1, 0.85))
        x1 = x0 + int(w * rng.uniform(0.1, 0.3))
        x0, x1 = max(x0, 0), min(x1, w)
        if x1 > x0:
            across = np.linspace(-1, 1, x1 - x0, dtype=np.float32)[None, :, None]
            pixels[:, x0:x1] = colour * (1 - 0.3 * across * across + 0.15 * light * across)


def downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: (H*f, W*f, 3) -> (H, W, 3)."""
    total = sum(pixels[i::factor, j::factor] for i in range(factor) for j in range(factor))
    return total * (1.0 / (factor * factor))


def render_image(
    look: Appearance,
    camera: Camera,
    track: Track,
    config: SyntheticConfig,
    rng: np.random.Generator,
    junk: bool = False,
) -> Image.Image:
    """One image of an identity through a camera (``junk``: a bad crop showing little of the person)."""
    h, w = config.height, config.width
    big_h, big_w = h * SUPERSAMPLE, w * SUPERSAMPLE
    view = VIEWS[track.view if rng.random() < 0.75 else int(rng.choice(3, p=camera.views))]
    facing = track.facing if rng.random() < 0.85 else -track.facing
    person_height = big_h * camera.scale * track.scale * look.height * rng.uniform(0.95, 1.05)
    cx = big_w / 2 + rng.uniform(-0.07, 0.07) * big_w
    top = big_h * (1 - camera.scale) / 2 + (big_h * camera.scale - person_height) + rng.uniform(-0.05, 0.04) * big_h
    if junk:
        person_height *= rng.uniform(0.7, 1.8)
        cx += rng.choice([-1, 1]) * rng.uniform(0.3, 0.55) * big_w
        top += rng.uniform(-0.5, 0.3) * big_h
    # the background is drawn at the output size: supersampling only smooths the person's edges
    pixels = background(camera, track, h, w, rng).repeat(SUPERSAMPLE, axis=0).repeat(SUPERSAMPLE, axis=1)
    def passer_by() -> None:
        other = make_appearance(rng, config.palette_size)
        shift = rng.choice([-1, 1]) * rng.uniform(0.5, 0.8) * big_w
        scale = rng.uniform(0.9, 1.15)
        facing = int(rng.choice([-1, 1]))
        other_top = top - (scale - 1) * person_height
        canvas = Canvas(pixels, cx + shift, other_top, person_height * scale, facing, camera.light)
        render_person(canvas, other, VIEWS[int(rng.integers(3))], rng)

    occluded = rng.random() < config.occlusion
    behind = occluded and rng.random() < 0.2
    if behind:  # a passer-by behind the person
        passer_by()
    render_person(Canvas(pixels, cx, top, person_height, facing, camera.light), look, view, rng)
    if occluded and not behind:
        add_occluder(pixels, rng, config.palette_size, camera.light, passer_by)
    pixels = downsample(pixels, SUPERSAMPLE) * rng.uniform(0.94, 1.06)  # per-image light flicker
    pixels = pixels * camera.gain * camera.white_balance
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + camera.saturation * (pixels - grey)
    image = Image.fromarray(np.uint8(np.clip(pixels + 0.5, 0, 255)))
    if camera.resolution < 0.95:
        small = (max(8, round(w * camera.resolution)), max(8, round(h * camera.resolution)))
        image = image.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    if camera.blur > 0.1:
        image = image.filter(ImageFilter.GaussianBlur(camera.blur * h / 128))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * (camera.noise * 255)
    noisy = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.uint8(np.clip(noisy + 0.5, 0, 255)))


# --- the split plan and the tree --------------------------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One image to render: where it goes and what it shows."""

    split: str  # bounding_box_train, query, bounding_box_test
    pid: int  # as written in the file name: 0 distractor, -1 junk
    camera: int  # 1-based
    identity: int  # whose appearance (distractors get their own; junk borrows one)
    junk: bool = False


def plan_shots(config: SyntheticConfig) -> list[Shot]:
    """Decide every image: each identity in 2-4 cameras; 8-10 training images per train id spread over its
    cameras; per test id one query in each of 2 of its cameras and 2 gallery images in each of its cameras;
    then about 5% distractor and 3% junk gallery images."""
    rng = rng_for(config.seed, 1)
    shots = []
    for pid in range(1, config.train_ids + config.test_ids + 1):
        count = int(rng.integers(2, min(4, config.cameras) + 1))
        cams = [int(c) + 1 for c in sorted(rng.choice(config.cameras, size=count, replace=False))]
        if pid <= config.train_ids:
            per_image = [cams[i % len(cams)] for i in rng.permutation(int(rng.integers(8, 11)))]
            shots += [Shot("bounding_box_train", pid, c, pid) for c in sorted(per_image)]
        else:
            shots += [Shot("query", pid, int(c), pid) for c in sorted(rng.choice(cams, size=2, replace=False))]
            shots += [Shot("bounding_box_test", pid, c, pid) for c in cams for _ in range(2)]
    num_gallery = sum(s.split == "bounding_box_test" for s in shots)
    first_distractor = config.train_ids + config.test_ids + 1
    for i in range(max(1, round(num_gallery * 0.05))):
        shots.append(Shot("bounding_box_test", 0, int(rng.integers(config.cameras)) + 1, first_distractor + i))
    for _ in range(max(1, round(num_gallery * 0.03))):
        borrowed = int(rng.integers(config.train_ids + 1, first_distractor))  # a test identity, badly cropped
        shots.append(Shot("bounding_box_test", -1, int(rng.integers(config.cameras)) + 1, borrowed, junk=True))
    return shots


def file_name(shot: Shot, frame: int) -> str:
    """Market-1501 style: ``0002_c1s1_000451_00.jpg`` (junk: ``-1_c1s1_...``)."""
    pid = "-1" if shot.pid == -1 else f"{shot.pid:04d}"
    return f"{pid}_c{shot.camera}s1_{frame:06d}_00.jpg"


def expected_counts(config: SyntheticConfig) -> dict[str, int]:
    """Number of images per split folder that ``generate`` writes for ``config``."""
    counts = dict.fromkeys(SPLITS, 0)
    for shot in plan_shots(config):
        counts[shot.split] += 1
    return counts


def render_shot(
    config: SyntheticConfig, cameras: list[Camera], shot: Shot, frame: int, looks: dict | None = None
) -> Image.Image:
    """Render one planned image from its own generator (seeded by seed, pid, frame); ``looks`` caches
    the identities' appearances and tracks between calls."""
    looks = {} if looks is None else looks
    if shot.identity not in looks:
        looks[shot.identity] = make_appearance(rng_for(config.seed, 3, shot.identity), config.palette_size)
    if (shot.identity, shot.camera) not in looks:
        camera = cameras[shot.camera - 1]
        looks[(shot.identity, shot.camera)] = make_track(rng_for(config.seed, 5, shot.identity, shot.camera), camera)
    rng = rng_for(config.seed, 4, shot.pid + 1, frame)
    look, track = looks[shot.identity], looks[(shot.identity, shot.camera)]
    return render_image(look, cameras[shot.camera - 1], track, config, rng, shot.junk)


def render_chunk(job: tuple[SyntheticConfig, list[tuple[int, Shot, str]]]) -> int:
    """Render and save a list of (frame, shot, path); returns how many (a worker's unit of work)."""
    config, items = job
    cameras, looks = make_cameras(config), {}
    for frame, shot, path in items:
        render_shot(config, cameras, shot, frame, looks).save(path, **JPEG_OPTIONS)
    return len(items)


def generate(
    out_dir: Path, config: SyntheticConfig = SyntheticConfig(), progress: bool = True, workers: int | None = None
) -> Path:
    """Write a Market-1501 tree (``bounding_box_train/``, ``query/``, ``bounding_box_test/``, ``synthetic.json``)
    into a temporary sibling folder, then rename it onto ``out_dir`` (which must not exist, or be empty).
    ``workers`` processes render (default: 2 for large trees, else 1); the bytes do not depend on it:
    same config, same bytes."""
    config.validate()
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"--out {out_dir}: already exists and is not an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        for split in SPLITS:
            (staging / split).mkdir()
        shots = plan_shots(config)
        jobs = [(frame, shot, str(staging / shot.split / file_name(shot, frame))) for frame, shot in enumerate(shots)]
        workers = workers if workers is not None else (1 if len(jobs) < 400 else min(2, os.cpu_count() or 1))
        chunk = max(16, len(jobs) // (8 * max(workers, 1)) + 1)
        chunks = [(config, jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]
        with tqdm(total=len(jobs), desc="rendering", unit="img", disable=not progress, leave=False) as bar:
            if workers > 1 and len(chunks) > 1:
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
                with context.Pool(min(workers, len(chunks)), initializer=default_signals) as pool:
                    for done in pool.imap_unordered(render_chunk, chunks):
                        bar.update(done)
            else:
                for job in chunks:
                    bar.update(render_chunk(job))
        info = {**asdict(config), "render_version": RENDER_VERSION}
        (staging / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); fails if someone filled it meanwhile
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_root() -> Path:
    """``$METRICATTACK_CACHE``, else ``$XDG_CACHE_HOME/metricattack``, else ``~/.cache/metricattack``."""
    if os.environ.get("METRICATTACK_CACHE"):
        return Path(os.environ["METRICATTACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metricattack"


def cached_synthetic(config: SyntheticConfig = SyntheticConfig(), progress: bool = True) -> Path:
    """The cached tree for ``config`` under ``cache_root()/synthetic/<key>``, generated on first use
    (if another process finishes it first, its tree is used)."""
    target = cache_root() / "synthetic" / config.key
    if (target / "synthetic.json").is_file():
        return target
    try:
        return generate(target, config, progress)
    except (InputError, OSError):
        if (target / "synthetic.json").is_file():  # another process renamed its tree onto target first
            return target
        raise


def contact_sheet(root: Path, pids: list[int] | None = None, cameras: int = 6, *, out: Path) -> Path:
    """A PNG grid of training images: 8 identities (rows, the first 8 unless ``pids``) x ``cameras``
    (columns), an empty cell where the identity has no image in that camera. Written atomically."""
    images = list_images(Path(root) / "bounding_box_train")
    by_key: dict[tuple[int, int], Path] = {}
    for path in images:
        match = NAME_PATTERN.match(path.name)
        if match:
            by_key.setdefault((int(match.group(1)), int(match.group(2))), path)
    pids = list(pids) if pids is not None else sorted({pid for pid, _ in by_key})[:8]
    with Image.open(images[0]) as first:
        cell_w, cell_h = first.size
    pad, label_w, header_h = 4, 40, 16
    size = (label_w + cameras * (cell_w + pad) + pad, header_h + len(pids) * (cell_h + pad) + pad)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(cameras):
        draw.text((label_w + pad + c * (cell_w + pad) + cell_w // 2 - 6, 2), f"c{c + 1}", fill="black")
    for row, pid in enumerate(pids):
        y = header_h + pad + row * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), f"{pid:04d}", fill="black")
        for c in range(cameras):
            x = label_w + pad + c * (cell_w + pad)
            if (pid, c + 1) in by_key:
                with Image.open(by_key[(pid, c + 1)]) as img:
                    sheet.paste(img.convert("RGB").resize((cell_w, cell_h)), (x, y))
            else:
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=(235, 235, 235))
    return atomic_write(Path(out), lambda tmp: sheet.save(tmp, format="PNG"))


def default_signals() -> None:
    """In a pool worker: SIGTERM and SIGINT do what they do by default, so the pool's own shutdown
    (SIGTERM) ends a worker quietly instead of raising the parent's handler's exception there."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
