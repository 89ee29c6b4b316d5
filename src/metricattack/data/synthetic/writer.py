"""The split plan (which image goes where) and the writer that renders it, in worker processes, into a tree."""

# Every image is rendered from its own random generator, seeded from (seed, pid, image index): the
# output does not depend on the order of rendering or the number of workers, and the same
# configuration gives the same bytes.

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from metricattack.data.synthetic.config import RENDER_VERSION, SyntheticConfig, rng_for
from metricattack.data.synthetic.identities import Camera, make_appearance, make_cameras, make_track
from metricattack.data.synthetic.render import render_image
from metricattack.errors import InputError
from metricattack.system.atomic import umask

JPEG_OPTIONS = {"format": "JPEG", "quality": 95, "subsampling": 0, "optimize": False, "progressive": False}
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


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
        os.chmod(staging, 0o777 & ~umask())  # mkdtemp creates 0700
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); fails if someone filled it meanwhile
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def default_signals() -> None:
    """In a pool worker: SIGTERM and SIGINT do what they do by default, so the pool's own shutdown
    (SIGTERM) ends a worker quietly instead of raising the parent's handler's exception there."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
