"""Synthetic pedestrians: the embedded default data set, rendered procedurally into a Market-1501 tree.

Each identity has a fixed appearance (proportions, skin, hair, clothes with patterns, accessories);
each camera has its own viewpoint mix, light, white balance, background, blur, noise and scale; each
image adds gait and pose jitter, bounding-box jitter and sometimes an occluder. Colours come from a
small palette so that identities share them, and camera casts make cross-camera matching harder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from metricattack.atomic import atomic_write
from metricattack.errors import InputError

RENDER_VERSION = 1  # bump when rendering changes, so cached trees are regenerated

PALETTE = np.array(
    [
        (200, 30, 30), (30, 60, 170), (40, 140, 60), (230, 200, 40), (240, 240, 235), (25, 25, 28),
        (120, 120, 125), (150, 90, 40), (230, 120, 30), (120, 40, 140), (90, 170, 210), (230, 150, 170),
        (20, 60, 40), (180, 160, 120), (90, 20, 30), (60, 80, 110),
    ],
    dtype=np.float32,
)  # fmt: skip
SKIN = np.array([(240, 200, 170), (220, 170, 130), (180, 120, 80), (110, 70, 45)], dtype=np.float32)
HAIR = np.array([(20, 15, 10), (70, 45, 25), (150, 110, 60), (200, 200, 200), (120, 30, 20)], dtype=np.float32)
VIEWS = ("front", "back", "side")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to render. Difficulty knobs:

    palette_size: how many clothing colours identities draw from (fewer: more shared colours);
    occlusion: probability that an image has an occluder in front of the person;
    camera_cast: strength of each camera's colour cast and illumination change (0: none);
    noise: standard deviation of the sensor noise, as a fraction of 1.
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

    def validate(self) -> None:
        """One-line errors naming the option."""
        if not 2 <= self.cameras <= 6:
            raise InputError(f"--cameras must be between 2 and 6 (the Market-1501 layout), got {self.cameras}")
        for name in ("train_ids", "test_ids"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.train_ids + self.test_ids > 1501:
            raise InputError("--train-ids plus --test-ids must be at most 1501 (the Market-1501 id range)")
        for name in ("height", "width"):
            if getattr(self, name) < 16:
                raise InputError(f"--{name} must be at least 16 pixels, got {getattr(self, name)}")
        if not 2 <= self.palette_size <= len(PALETTE):
            raise InputError(f"palette_size must be between 2 and {len(PALETTE)}, got {self.palette_size}")

    @property
    def key(self) -> str:
        """A short hash of every field and the render version: the cache folder's name."""
        text = json.dumps({**asdict(self), "render_version": RENDER_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Appearance:
    """An identity's fixed look."""

    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    top_second: np.ndarray
    pattern: str  # plain, stripes, checks, logo
    long_sleeves: bool
    bottom: np.ndarray
    bottom_kind: str  # trousers, shorts, skirt
    shoes: np.ndarray
    backpack: np.ndarray | None
    bag: np.ndarray | None
    hat: np.ndarray | None
    height: float  # fraction of the frame's person height
    build: float  # width multiplier


@dataclass(frozen=True)
class Camera:
    """A camera's fixed conditions."""

    views: np.ndarray  # probabilities of front, back, side
    gain: float
    white_balance: np.ndarray  # (3,)
    wall: np.ndarray
    ground: np.ndarray
    horizon: float
    blur: float
    noise: float
    scale: float


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, keys): rendering does not depend on order or workers."""
    return np.random.default_rng(np.random.SeedSequence([seed, *[k % 2**32 for k in keys]]))


def make_appearance(rng: np.random.Generator, palette_size: int) -> Appearance:
    """Draw an identity's look."""
    colours = PALETTE[:palette_size]

    def colour() -> np.ndarray:
        return colours[rng.integers(len(colours))]

    return Appearance(
        skin=SKIN[rng.integers(len(SKIN))],
        hair=HAIR[rng.integers(len(HAIR))],
        top=colour(),
        top_second=colour(),
        pattern=str(rng.choice(["plain", "plain", "stripes", "checks", "logo"])),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=colour(),
        bottom_kind=str(rng.choice(["trousers", "trousers", "shorts", "skirt"])),
        shoes=colour() * 0.6,
        backpack=colour() if rng.random() < 0.3 else None,
        bag=colour() if rng.random() < 0.2 else None,
        hat=colour() if rng.random() < 0.15 else None,
        height=float(rng.uniform(0.86, 1.0)),
        build=float(rng.uniform(0.85, 1.15)),
    )


def make_camera(rng: np.random.Generator, strength: float, noise: float) -> Camera:
    """Draw a camera's conditions; ``strength`` scales its colour cast and light."""
    views = rng.dirichlet([1.5, 1.5, 1.0])
    return Camera(
        views=views,
        gain=float(1 + strength * rng.uniform(-0.3, 0.25)),
        white_balance=(1 + strength * rng.uniform(-0.15, 0.15, size=3)).astype(np.float32),
        wall=rng.uniform(60, 200, size=3).astype(np.float32),
        ground=rng.uniform(50, 170, size=3).astype(np.float32),
        horizon=float(rng.uniform(0.55, 0.8)),
        blur=float(rng.uniform(0.0, 0.9)),
        noise=float(noise * rng.uniform(0.5, 1.5)),
        scale=float(rng.uniform(0.82, 0.95)),
    )


class Canvas:
    """An RGB float image with a person-centred coordinate system (u across, v from head top to feet)."""

    def __init__(self, background: np.ndarray, cx: float, top: float, person_height: float, width: float):
        self.pixels = background
        h, w = background.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.u = (xs + 0.5 - cx) / person_height  # body units: the person is 1 tall
        self.v = (ys + 0.5 - top) / person_height
        self.width = width

    def box(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        """Mask of a rectangle in body units (u scaled by the build)."""
        b = self.width
        return (self.u >= u0 * b) & (self.u < u1 * b) & (self.v >= v0) & (self.v < v1)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
        """Mask of an ellipse in body units."""
        return ((self.u - cu * self.width) / (ru * self.width)) ** 2 + ((self.v - cv) / rv) ** 2 <= 1

    def paint(self, mask: np.ndarray, colour: np.ndarray, shade: float = 1.0) -> None:
        """Fill the masked pixels with a colour."""
        self.pixels[mask] = colour * shade


def render_person(canvas: Canvas, look: Appearance, view: str, rng: np.random.Generator) -> None:
    """Draw a pedestrian on the canvas in the given view, with gait and arm-swing jitter."""
    side = view == "side"
    half = 0.085 if side else 0.13
    stride = rng.uniform(-0.07, 0.07) * (2.0 if side else 1.0)
    swing = rng.uniform(-0.04, 0.04)
    # Backpack behind the body in side view is drawn first so the torso covers its edge.
    if look.backpack is not None and side:
        canvas.paint(canvas.box(-half - 0.09, -half + 0.02, 0.17, 0.43), look.backpack, 0.9)
    # legs and shoes
    legs = [(-0.02 + stride, 0.05 + stride)] if side else [(-0.1 + stride / 2, -0.01), (0.01, 0.1 - stride / 2)]
    if side:
        legs.append((-0.03 - stride, 0.04 - stride))
    for u0, u1 in legs:
        canvas.paint(canvas.box(u0, u1, 0.5, 0.95), look.skin)
        if look.bottom_kind == "trousers":
            canvas.paint(canvas.box(u0, u1, 0.5, 0.94), look.bottom)
        elif look.bottom_kind == "shorts":
            canvas.paint(canvas.box(u0 - 0.01, u1 + 0.01, 0.5, 0.66), look.bottom)
        canvas.paint(canvas.box(u0 - 0.01, u1 + (0.04 if side else 0.01), 0.93, 1.0), look.shoes)
    if look.bottom_kind == "skirt":
        skirt = canvas.box(-half - 0.02, half + 0.02, 0.48, 0.7) & (np.abs(canvas.u) <= (half + 0.02 + (canvas.v - 0.48) * 0.3) * canvas.width)
        canvas.paint(skirt, look.bottom)
    # torso with its pattern
    torso = canvas.box(-half, half, 0.15, 0.52)
    canvas.paint(torso, look.top)
    if look.pattern == "stripes":
        canvas.paint(torso & (np.floor(canvas.v * 28) % 2 == 0), look.top_second)
    elif look.pattern == "checks":
        canvas.paint(torso & ((np.floor(canvas.v * 20) + np.floor(canvas.u * 20)) % 2 == 0), look.top_second)
    elif look.pattern == "logo" and view == "front":
        canvas.paint(canvas.box(-0.06, 0.06, 0.24, 0.34), look.top_second)
    # arms: sleeve then skin
    sleeve_end = 0.46 if look.long_sleeves else 0.29
    arm_sides = [(-0.03 + swing, 0.03 + swing)] if side else [(-half - 0.05, -half), (half, half + 0.05)]
    for i, (u0, u1) in enumerate(arm_sides):
        shift = swing * (1 if i else -1) if not side else 0.0
        canvas.paint(canvas.box(u0 + shift, u1 + shift, 0.16, 0.5), look.skin)
        canvas.paint(canvas.box(u0 + shift, u1 + shift, 0.16, sleeve_end), look.top, 0.92)
    # accessories
    if look.backpack is not None and view == "back":
        canvas.paint(canvas.box(-half + 0.03, half - 0.03, 0.18, 0.44), look.backpack)
    elif look.backpack is not None and view == "front":
        for u in (-half + 0.04, half - 0.06):
            canvas.paint(canvas.box(u, u + 0.02, 0.15, 0.33), look.backpack, 0.8)
    if look.bag is not None:
        u0 = half + 0.01 if view != "back" else -half - 0.11
        canvas.paint(canvas.box(u0, u0 + 0.1, 0.44, 0.6), look.bag)
    # head, hair, hat
    canvas.paint(canvas.ellipse(0.0, 0.08, 0.09, 0.065), look.skin)
    hair = canvas.ellipse(0.0, 0.07, 0.095, 0.065)
    if view == "front":
        hair &= canvas.v < 0.055
    elif side:
        hair &= (canvas.v < 0.06) | (canvas.u < -0.02 * canvas.width)
    canvas.paint(hair, look.hair)
    if look.hat is not None:
        canvas.paint(canvas.box(-0.1, 0.1, 0.0, 0.045), look.hat)
        canvas.paint(canvas.box(-0.13 if not side else 0.0, 0.13, 0.035, 0.05), look.hat, 0.85)


def background(camera: Camera, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A wall above a ground plane, with low-frequency texture."""
    rows = np.arange(height, dtype=np.float32)[:, None, None] / height
    pixels = np.where(rows < camera.horizon, camera.wall, camera.ground) * np.ones((1, width, 1), dtype=np.float32)
    texture = rng.normal(0, 12, size=(4, 3, 3)).astype(np.float32)
    texture = np.asarray(Image.fromarray(np.uint8(np.clip(texture + 128, 0, 255))).resize((width, height), Image.BILINEAR))
    return pixels + texture.astype(np.float32) - 128


def render_image(
    look: Appearance, camera: Camera, config: SyntheticConfig, rng: np.random.Generator, junk: bool = False
) -> Image.Image:
    """One image of an identity through a camera (``junk``: a bad crop that shows only part of it)."""
    h, w = config.height, config.width
    view = VIEWS[rng.choice(3, p=camera.views)]
    person_height = h * camera.scale * look.height * rng.uniform(0.95, 1.05)
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    top = (h - person_height) / 2 + rng.uniform(-0.04, 0.04) * h
    if junk:
        cx += rng.choice([-1, 1]) * rng.uniform(0.35, 0.5) * w
        top += rng.uniform(-0.4, 0.4) * h
    canvas = Canvas(background(camera, h, w, rng), cx, top, person_height, look.build)
    render_person(canvas, look, view, rng)
    pixels = canvas.pixels
    if rng.random() < config.occlusion:
        colour = PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.5, 1.0)
        if rng.random() < 0.5:  # something in the foreground at the bottom (a car, a bench)
            pixels[int(h * rng.uniform(0.65, 0.85)) :] = colour
        else:  # a pole or another passer-by at one side
            x0 = int(w * rng.uniform(-0.1, 0.7))
            pixels[:, max(x0, 0) : max(x0 + int(w * rng.uniform(0.15, 0.35)), 0)] = colour
    pixels = pixels * camera.gain * camera.white_balance
    image = Image.fromarray(np.uint8(np.clip(pixels, 0, 255)))
    if camera.blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(camera.blur * h / 128))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, camera.noise * 255, size=(h, w, 3))
    return Image.fromarray(np.uint8(np.clip(noisy, 0, 255)))


@dataclass(frozen=True)
class Shot:
    """One image to render: where it goes and what it shows."""

    split: str  # bounding_box_train, query, bounding_box_test
    pid: int
    camera: int  # 1-based
    identity: int  # which appearance (distractors and junk get their own)
    junk: bool = False


def plan_shots(config: SyntheticConfig) -> list[Shot]:
    """Decide every image: each identity in 2-4 cameras; ~9 training images per train id; for test ids
    one query in each of 2 cameras and 2 gallery images per camera; plus distractors and junk."""
    rng = rng_for(config.seed, 1)
    shots = []
    for pid in range(1, config.train_ids + config.test_ids + 1):
        cams = sorted(rng.choice(config.cameras, size=int(rng.integers(2, min(4, config.cameras) + 1)), replace=False) + 1)
        if pid <= config.train_ids:
            count = int(rng.integers(7, 12))
            shots += [Shot("bounding_box_train", pid, int(cams[i % len(cams)]), pid) for i in range(count)]
        else:
            shots += [Shot("query", pid, int(c), pid) for c in rng.choice(cams, size=2, replace=False)]
            shots += [Shot("bounding_box_test", pid, int(c), pid) for c in cams for _ in range(2)]
    num_gallery = sum(s.split == "bounding_box_test" for s in shots)
    base = config.train_ids + config.test_ids + 1
    for i in range(max(1, num_gallery // 20)):
        shots.append(Shot("bounding_box_test", 0, int(rng.integers(config.cameras)) + 1, base + i))
    for i in range(max(1, num_gallery // 33)):
        shots.append(Shot("bounding_box_test", -1, int(rng.integers(config.cameras)) + 1, int(rng.integers(1, base)), True))
    return shots


def file_name(shot: Shot, frame: int) -> str:
    """Market-1501 style: ``0002_c1s1_000451_00.jpg`` (junk: ``-1_c1s1_...``)."""
    pid = "-1" if shot.pid == -1 else f"{shot.pid:04d}"
    return f"{pid}_c{shot.camera}s1_{frame:06d}_00.jpg"


def generate(out_dir: Path, config: SyntheticConfig = SyntheticConfig(), progress: bool = True) -> Path:
    """Render the tree into a temporary sibling folder, then rename it onto ``out_dir`` (which must not
    exist, or be empty). Same config, same bytes."""
    config.validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"--out {out_dir}: already exists and is not an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for split in ("bounding_box_train", "query", "bounding_box_test"):
            (staging / split).mkdir()
        cameras = [make_camera(rng_for(config.seed, 2, c), config.camera_cast, config.noise) for c in range(config.cameras)]
        looks: dict[int, Appearance] = {}
        for frame, shot in enumerate(tqdm(plan_shots(config), desc="rendering", disable=not progress, leave=False)):
            if shot.identity not in looks:
                looks[shot.identity] = make_appearance(rng_for(config.seed, 3, shot.identity), config.palette_size)
            image = render_image(looks[shot.identity], cameras[shot.camera - 1], config, rng_for(config.seed, 4, frame), shot.junk)
            image.save(staging / shot.split / file_name(shot, frame), format="JPEG", quality=95)
        (staging / "synthetic.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def cache_root() -> Path:
    """``$METRICATTACK_CACHE``, else ``$XDG_CACHE_HOME/metricattack``, else ``~/.cache/metricattack``."""
    if os.environ.get("METRICATTACK_CACHE"):
        return Path(os.environ["METRICATTACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metricattack"


def cached_synthetic(config: SyntheticConfig = SyntheticConfig(), progress: bool = True) -> Path:
    """The cached tree for ``config``, generated on first use (a concurrent generator's result is reused)."""
    target = cache_root() / "synthetic" / config.key
    if (target / "synthetic.json").is_file():
        return target
    try:
        return generate(target, config, progress)
    except (InputError, OSError):
        if (target / "synthetic.json").is_file():  # another process finished first
            return target
        raise


def contact_sheet(root: Path, out: Path, pids: list[int] | None = None, cameras: int = 6) -> Path:
    """A PNG grid: 8 training identities (rows) x cameras (columns); an empty cell where none was seen."""
    from metricattack.data.base import list_images

    images = list_images(Path(root) / "bounding_box_train")
    by_key: dict[tuple[int, int], Path] = {}
    for path in images:
        pid, camera = int(path.name[:4]), int(path.name.split("_c")[1][0])
        by_key.setdefault((pid, camera), path)
    pids = pids or sorted({pid for pid, _ in by_key})[:8]
    first = Image.open(images[0])
    cell_w, cell_h, pad = first.width, first.height, 4
    sheet = Image.new("RGB", (cameras * (cell_w + pad) + pad + 40, len(pids) * (cell_h + pad) + pad + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(cameras):
        draw.text((40 + pad + c * (cell_w + pad) + cell_w // 3, 2), f"c{c + 1}", fill="black")
    for row, pid in enumerate(pids):
        y = 16 + pad + row * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), f"{pid:04d}", fill="black")
        for c in range(cameras):
            if (pid, c + 1) in by_key:
                with Image.open(by_key[(pid, c + 1)]) as img:
                    sheet.paste(img.convert("RGB"), (40 + pad + c * (cell_w + pad), y))
    return atomic_write(Path(out), lambda tmp: sheet.save(tmp, format="PNG"))
