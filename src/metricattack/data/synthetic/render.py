"""Rendering one image: background, person, occluders, then the camera's light, colour, blur and noise."""

# Rendering is vectorised numpy on a 2x supersampled grid: limbs are capsules (points within a radius
# of a segment), the head an ellipse, the torso a tapered band, each shaded by its distance to the
# axis (a cheap cylinder look), then averaged down to the output size.

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from metricattack.data.synthetic.canvas import Canvas
from metricattack.data.synthetic.config import PALETTE, VIEWS, SyntheticConfig, rng_for
from metricattack.data.synthetic.identities import Appearance, Camera, Track, make_appearance, make_cameras, make_track
from metricattack.data.synthetic.person import render_person
from metricattack.data.synthetic.texture import PrintScene, Texture, TextureLayer
from metricattack.errors import InputError

SUPERSAMPLE = 2  # render at this multiple of the output size, then average down (anti-aliasing)


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
    pixels: np.ndarray,
    rng: np.random.Generator,
    palette_size: int,
    light: float,
    draw_person: Callable[[], None],
    layer: TextureLayer | None = None,
) -> None:
    """Something between the camera and the person: an object at the bottom, a pole, or a passer-by
    (``layer``: the print's record, which the object covers)."""
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
        if layer is not None:
            layer.cover((slice(y0, None), slice(x0, x1)))
    else:  # a pole or a tree trunk
        x0 = int(w * rng.uniform(-0.1, 0.85))
        x1 = x0 + int(w * rng.uniform(0.1, 0.3))
        x0, x1 = max(x0, 0), min(x1, w)
        if x1 > x0:
            across = np.linspace(-1, 1, x1 - x0, dtype=np.float32)[None, :, None]
            pixels[:, x0:x1] = colour * (1 - 0.3 * across * across + 0.15 * light * across)
            if layer is not None:
                layer.cover((slice(None), slice(x0, x1)))


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
    texture: Texture | None = None,
) -> Image.Image:
    """One image of an identity through a camera (``junk``: a bad crop showing little of the person;
    ``texture``: a print on the top)."""
    return draw(look, camera, track, config, rng, junk, texture, None)[0]


def render_scene(
    look: Appearance,
    camera: Camera,
    track: Track,
    config: SyntheticConfig,
    rng: np.random.Generator,
    junk: bool = False,
    texture: Texture | None = None,
) -> tuple[Image.Image, PrintScene]:
    """``render_image`` (the same bytes), with what the torch compositor needs to redraw its print."""
    layer = TextureLayer(config.height * SUPERSAMPLE, config.width * SUPERSAMPLE)
    image, scene = draw(look, camera, track, config, rng, junk, texture, layer)
    assert scene is not None  # a layer always gives a scene
    return image, scene


def render_wearer(
    config: SyntheticConfig,
    identity: int,
    texture: Texture | None,
    cameras: Sequence[int],
    count: int,
    seed: int = 0,
    fresh_tracks: bool = False,
    camera_set: Sequence[Camera] | None = None,
) -> list[tuple[Image.Image, PrintScene]]:
    """``count`` renders of ``identity`` (a pid of ``config``) wearing ``texture``, through the 1-based
    ``cameras`` in turn, each with the renderer's own draws (view, gait, pose, distance, light, occluders,
    noise) from its own generator (config.seed, seed, identity, camera, index). The identity walks its
    own track in each camera, as in the data set, or with ``fresh_tracks`` a new one per render (any of
    the camera's views, either direction). ``camera_set``: the cameras ``cameras`` number (default: the
    configuration's), e.g. cameras the data set never had."""
    known = make_cameras(config) if camera_set is None else list(camera_set)
    if not cameras:
        raise InputError("cameras: expected at least one camera, got none")
    if any(not 1 <= number <= len(known) for number in cameras):
        raise InputError(f"cameras: expected camera numbers between 1 and {len(known)}, got {list(cameras)}")
    if not 1 <= identity <= config.train_ids + config.test_ids:
        raise InputError(f"identity: expected a pid between 1 and {config.train_ids + config.test_ids}, got {identity}")
    look = make_appearance(rng_for(config.seed, 3, identity), config.palette_size)
    renders = []
    for index in range(count):
        number = cameras[index % len(cameras)]
        rng = rng_for(config.seed, 6, seed, identity, number, index)
        track_rng = rng if fresh_tracks else rng_for(config.seed, 5, identity, number)  # the writer's track
        track = make_track(track_rng, known[number - 1])
        renders.append(render_scene(look, known[number - 1], track, config, rng, texture=texture))
    return renders


def draw(
    look: Appearance,
    camera: Camera,
    track: Track,
    config: SyntheticConfig,
    rng: np.random.Generator,
    junk: bool,
    texture: Texture | None,
    layer: TextureLayer | None,
) -> tuple[Image.Image, PrintScene | None]:
    """Render one image; with a ``layer``, also its PrintScene."""
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
        canvas = Canvas(pixels, cx + shift, other_top, person_height * scale, facing, camera.light, layer)
        render_person(canvas, other, VIEWS[int(rng.integers(3))], rng)

    occluded = rng.random() < config.occlusion
    behind = occluded and rng.random() < 0.2
    if behind:  # a passer-by behind the person
        passer_by()
    render_person(Canvas(pixels, cx, top, person_height, facing, camera.light, layer), look, view, rng, texture)
    if occluded and not behind:
        add_occluder(pixels, rng, config.palette_size, camera.light, passer_by, layer)
    flicker = rng.uniform(0.94, 1.06)  # per-image light
    rest = None if layer is None else downsample(np.where(layer.covered[..., None], 0, pixels), SUPERSAMPLE)
    pixels = downsample(pixels, SUPERSAMPLE) * flicker
    pixels = pixels * camera.gain * camera.white_balance
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + camera.saturation * (pixels - grey)
    image = Image.fromarray(np.uint8(np.clip(pixels + 0.5, 0, 255)))
    small = (max(8, round(w * camera.resolution)), max(8, round(h * camera.resolution)))
    if camera.resolution < 0.95:
        image = image.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    blur = camera.blur * h / 128 if camera.blur > 0.1 else 0.0
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * (camera.noise * 255)
    noisy = np.asarray(image, dtype=np.float32) + noise
    image = Image.fromarray(np.uint8(np.clip(noisy + 0.5, 0, 255)))
    if layer is None or rest is None:
        return image, None
    scene = PrintScene(
        grid=layer.grid.copy(),
        shading=np.where(layer.covered, layer.shading, 0).astype(np.float32),
        rest=rest.astype(np.float32),
        gain=flicker * camera.gain * camera.white_balance.astype(np.float64),
        saturation=camera.saturation,
        resize=small if camera.resolution < 0.95 else None,
        blur=blur,
        noise=noise,
        supersample=SUPERSAMPLE,
    )
    return image, scene
