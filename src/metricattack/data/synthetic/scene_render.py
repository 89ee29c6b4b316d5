"""Drawing a planned scene (``scene.plan_scene``) and writing it as a MOTChallenge sequence folder.

Each person is drawn by the still renderer's ``render_person`` on a canvas that is a view of the frame
cut to their box, so nothing of them lands outside it, farthest first so that nearer people hide
farther ones; the pillar is drawn among them by depth. Frames are drawn at twice the size and
averaged down, as the stills are, with the camera's light and colour but no blur or noise: outside
the boxes a frame equals the empty background exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from metricattack.data.synthetic.cache import cached_folder
from metricattack.data.synthetic.canvas import Canvas
from metricattack.data.synthetic.config import VIEWS, rng_for
from metricattack.data.synthetic.identities import Camera, Track, make_camera
from metricattack.data.synthetic.render import SUPERSAMPLE, background, downsample
from metricattack.data.synthetic.person import render_person
from metricattack.data.synthetic.scene import SCENE_VERSION, SceneConfig, ScenePlan, detections, gt_rows, plan_scene
from metricattack.errors import InputError
from metricattack.system.atomic import umask
from metricattack.system.cache import cache_root

PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "optimize": False}
HORIZON = 0.34  # where the wall meets the ground, a fraction of the height


class ScriptedGait:
    """A random generator whose first two ``uniform`` draws are given fractions of their ranges:
    ``render_person`` draws its gait phase and then its stride that way, so a walker's legs follow
    its steps from frame to frame; every other draw goes to the wrapped generator."""

    def __init__(self, rng: np.random.Generator, phase: float, stride: float) -> None:
        self.rng, self.script = rng, [phase, stride]

    def uniform(self, low: float = 0.0, high: float = 1.0, size=None):
        """The next scripted fraction of [low, high), or the wrapped generator's draw."""
        if self.script and size is None:
            return low + self.script.pop(0) * (high - low)
        return self.rng.uniform(low, high, size)

    def __getattr__(self, name: str):
        return getattr(self.rng, name)


def scene_camera(config: SceneConfig) -> Camera:
    """The scene's camera: a still camera's look with a mild colour cast, no blur, no noise."""
    camera = make_camera(rng_for(config.seed, 30), int(rng_for(config.seed, 31).integers(4)), 0.5, 0.0)
    return replace(camera, horizon=HORIZON, blur=0.0, resolution=1.0, texture_scale=1.0)


def render_background(plan: ScenePlan, camera: Camera) -> np.ndarray:
    """The static background (wall and ground) at twice the frame size. (2H, 2W, 3) float32"""
    config = plan.config
    track = Track(view=0, facing=1, offset=float(rng_for(config.seed, 32).uniform(0, 1000)), scale=1.0)
    pixels = background(camera, track, config.height, config.width, rng_for(config.seed, 33))
    return pixels.repeat(SUPERSAMPLE, axis=0).repeat(SUPERSAMPLE, axis=1)


def draw_pillar(pixels: np.ndarray, plan: ScenePlan, camera: Camera) -> None:
    """A round concrete column standing on ``plan.pillar``'s bottom edge, shaded like a cylinder."""
    x0, y0, x1, y1 = (v * SUPERSAMPLE for v in plan.pillar)
    across = np.linspace(-1, 1, x1 - x0, dtype=np.float32)[None, :, None]
    shade = 1 - 0.35 * across * across + 0.2 * camera.light * across
    pixels[y0:y1, x0:x1] = np.array([168, 164, 156], dtype=np.float32) * shade
    band = max(2, (y1 - y0) // 40)
    pixels[y1 - band : y1, x0:x1] *= 0.6  # its foot
    pixels[y0 + band * 6 : y0 + band * 7, x0:x1] *= 0.8  # a joint between its segments


def draw_person(pixels: np.ndarray, plan: ScenePlan, frame: int, person: int, camera: Camera) -> None:
    """Draw one person of the plan into the supersampled frame, cut to their box."""
    s = SUPERSAMPLE
    x0, y0, x1, y1 = (int(v) * s for v in plan.boxes[frame, person])
    height, width = pixels.shape[:2]
    cut = pixels[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]  # a view: drawing lands in pixels
    feet_x, feet_y = plan.feet[frame, person] * s
    tall = plan.person_height[frame, person] * s
    canvas = Canvas(cut, feet_x - max(x0, 0), feet_y - tall - max(y0, 0), tall, int(plan.facing[frame, person]), camera.light)
    gait = ScriptedGait(rng_for(plan.config.seed, 34, person, frame), plan.gait[frame, person], plan.stride[person])
    render_person(canvas, plan.looks[person], VIEWS[plan.view[frame, person]], gait)


def render_frame(plan: ScenePlan, frame: int, camera: Camera, empty: np.ndarray, people: bool = True) -> np.ndarray:
    """Frame ``frame`` (0-based) as (H, W, 3) uint8 over the supersampled background ``empty``
    (``people=False``: the empty scene with only the pillar)."""
    pixels = empty.copy()
    order = plan.depth_order(frame) if people else []
    behind = [p for p in order if plan.feet[frame, p, 1] < plan.pillar[3]]
    for person in behind:
        draw_person(pixels, plan, frame, person, camera)
    draw_pillar(pixels, plan, camera)
    for person in order[len(behind) :]:
        draw_person(pixels, plan, frame, person, camera)
    pixels = downsample(pixels, SUPERSAMPLE) * camera.gain * camera.white_balance
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + camera.saturation * (pixels - grey)
    return np.uint8(np.clip(pixels + 0.5, 0, 255))


def mot_lines(rows: np.ndarray, formats: tuple[str, ...]) -> str:
    """Comma-separated lines, one per row, each column with its format."""
    return "".join(",".join(f.format(v) for f, v in zip(formats, row)) + "\n" for row in rows)


def sequence_files(plan: ScenePlan, name: str) -> dict[str, str]:
    """The text files of the sequence: seqinfo.ini, gt/gt.txt, det/det.txt and scene.json."""
    config = plan.config
    seqinfo = (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={config.fps}\nseqLength={config.frames}\n"
        f"imWidth={config.width}\nimHeight={config.height}\nimExt=.png\n"
    )
    gt = mot_lines(gt_rows(plan), ("{:.0f}",) * 8 + ("{:.4f}",))
    found = detections(plan)
    det_rows = np.column_stack([found[:, 0], -np.ones(len(found)), found[:, 2:7], -np.ones((len(found), 3))])
    det = mot_lines(det_rows, ("{:.0f}", "{:.0f}") + ("{:.1f}",) * 4 + ("{:.3f}",) + ("{:.0f}",) * 3)
    info = {**asdict(config), "scene_version": SCENE_VERSION, "kinds": list(plan.kinds)}
    return {"seqinfo.ini": seqinfo, "gt/gt.txt": gt, "det/det.txt": det, "scene.json": json.dumps(info, indent=2) + "\n"}


def write_scene(out_dir: Path, config: SceneConfig = SceneConfig(), progress: bool = True) -> Path:
    """Render the scene into a MOTChallenge sequence folder ``out_dir`` (``img1/000001.png``...,
    ``gt/gt.txt``, ``det/det.txt``, ``seqinfo.ini``, ``scene.json``), built in a temporary sibling and
    renamed onto ``out_dir`` (which must not exist, or be empty). Same config, same bytes."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"{out_dir}: already exists and is not an empty folder")
    plan = plan_scene(config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        for folder in ("img1", "gt", "det"):
            (staging / folder).mkdir()
        for relative, text in sequence_files(plan, out_dir.name).items():
            (staging / relative).write_text(text, encoding="utf-8")
        camera = scene_camera(config)
        empty = render_background(plan, camera)
        for frame in tqdm(range(config.frames), desc="rendering scene", unit="frame", disable=not progress, leave=False):
            image = Image.fromarray(render_frame(plan, frame, camera, empty))
            image.save(staging / "img1" / f"{frame + 1:06d}.png", **PNG_OPTIONS)
        os.chmod(staging, 0o777 & ~umask())  # mkdtemp creates 0700
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def cached_scene(config: SceneConfig = SceneConfig(), progress: bool = True) -> Path:
    """The cached sequence for ``config`` under ``cache_root()/scenes/<key>``, rendered on first use."""
    return cached_folder(cache_root() / "scenes" / config.key, "scene.json", lambda target: write_scene(target, config, progress))
