"""A synthetic tracking scene's plan: who walks where, their boxes and visibility per frame, and the
detections made from them (pure numpy; ``scene_render`` draws and writes it).

The camera is static and looks down on a plaza: a person's height grows linearly with how far down
the image their feet are, and whoever is further down is nearer and drawn later. People come in
choreographed pairs whose paths cross, so that motion alone cannot tell who is who:

- ``overlap``: opposite directions at almost the same depth; the nearer one hides most of the other;
- ``x-cross``: the same horizontal direction, one drifting down and one up: they overlap for long;
- ``pillar``: opposite directions behind the pillar, hidden together and reappearing swapped sides;

and a person left over walks alone behind the pillar (a full occlusion of several frames).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from metricattack.data.synthetic.config import rng_for
from metricattack.data.synthetic.identities import Appearance, make_appearance
from metricattack.errors import InputError

SCENE_VERSION = 1  # bump when the plan or the drawing changes: cached scenes are keyed by it
PAIR_KINDS = ("overlap", "x-cross", "pillar")
FAR_Y, NEAR_Y = 0.58, 0.95  # feet rows (fractions of the height) of the farthest and nearest walkers
FAR_HEIGHT, NEAR_HEIGHT = 0.29, 0.44  # their heights, fractions of the frame height
PILLAR_BASE, PILLAR_WIDTH = 0.63, 0.15  # the pillar stands on this row; its width is a fraction of the width
BOX_HALF_WIDTH, BOX_BELOW = 0.22, 0.04  # a person's box around its canvas, in person heights
GAIT_CYCLE = 1.3  # person heights walked per gait cycle
LOOKALIKE_PATTERNS = ("stripes", "checks", "twotone", "plain")


@dataclass(frozen=True)
class SceneConfig:
    """What the tracking scene shows and how its detections are made.

    seed: everything random derives from it (same config, same bytes);
    width, height: frame size in pixels; frames: sequence length; fps: frame rate written to seqinfo.ini;
    people: walkers (pairs that cross, and one alone behind the pillar if odd);
    lookalikes: pairs of walkers (never crossing partners) with the same colours and different patterns;
    det_jitter: standard deviation of the detections' box jitter, a fraction of the box's size;
    det_miss: probability of missing a fully visible person; det_miss_occluded: added miss probability
    per unit of occlusion (1 - visibility); det_min_visibility: below it a person is always missed;
    det_false: mean number of false detections per frame.
    """

    seed: int = 0
    width: int = 640
    height: int = 360
    frames: int = 180
    fps: int = 10
    people: int = 7
    lookalikes: int = 1
    det_jitter: float = 0.04
    det_miss: float = 0.03
    det_miss_occluded: float = 0.6
    det_min_visibility: float = 0.2
    det_false: float = 0.1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise an InputError naming the first option out of range."""
        for name, low in (("width", 64), ("height", 48), ("frames", 2), ("fps", 1), ("people", 2)):
            if getattr(self, name) < low:
                raise InputError(f"scene {name} must be at least {low}, got {getattr(self, name)}")
        if not 0 <= self.lookalikes <= max_lookalikes(self.people):
            raise InputError(
                f"scene lookalikes must be between 0 and {max_lookalikes(self.people)} for {self.people} people, "
                f"got {self.lookalikes}"
            )
        for name in ("det_miss", "det_miss_occluded", "det_min_visibility"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"scene {name} must be a probability between 0 and 1, got {getattr(self, name)}")
        if not 0 <= self.det_jitter <= 0.5:
            raise InputError(f"scene det_jitter must be between 0 and 0.5 (a fraction of the box), got {self.det_jitter}")
        if not 0 <= self.det_false <= 20:
            raise InputError(f"scene det_false must be between 0 and 20 per frame, got {self.det_false}")

    @property
    def key(self) -> str:
        """A short hash of every field and the scene version: the cache folder's name."""
        text = json.dumps({**asdict(self), "scene_version": SCENE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def tiny(cls, seed: int = 0) -> SceneConfig:
        """A small scene for tests: 160x96, 20 frames, 3 people (one crossing pair and a lookalike)."""
        return cls(seed=seed, width=160, height=96, frames=20, people=3, lookalikes=1)


def max_lookalikes(people: int) -> int:
    """How many lookalike pairs ``lookalike_pairs`` can form among ``people`` walkers."""
    return sum(1 for j in range(people) if lookalike_first(j) + 2 < people)


def lookalike_first(j: int) -> int:
    """The 0-based walker whose look the j-th lookalike pair copies; its twin is two walkers later,
    in another crossing pair: pairs (0, 2), (1, 3), (4, 6), (5, 7), ..."""
    return 4 * (j // 2) + j % 2


def lookalike_pairs(config: SceneConfig) -> list[tuple[int, int]]:
    """The lookalike pairs as 1-based person ids."""
    return [(lookalike_first(j) + 1, lookalike_first(j) + 3) for j in range(config.lookalikes)]


@dataclass(frozen=True)
class ScenePlan:
    """Everything about a scene but its pixels. Boxes are integer pixel edges (x0, y0, x1, y1), 0-based,
    end exclusive; ``boxes`` are whole (they may leave the frame), ``inside`` whether any of a box is in it."""

    config: SceneConfig
    looks: tuple[Appearance, ...]  # per person (id = index + 1)
    kinds: tuple[str, ...]  # per person: the pair kind, or "alone"
    pillar: tuple[int, int, int, int]  # the static occluder's box
    feet: np.ndarray  # (F, P, 2) feet position (x, y) in pixels
    person_height: np.ndarray  # (F, P) canvas person height in pixels (head top to soles)
    boxes: np.ndarray  # (F, P, 4) int
    inside: np.ndarray  # (F, P) bool
    visibility: np.ndarray  # (F, P) visible fraction of the whole box: in the frame and not hidden
    view: np.ndarray  # (F, P) 0 front, 1 back, 2 side (config.VIEWS)
    facing: np.ndarray  # (F, P) +1 / -1
    gait: np.ndarray  # (F, P) gait phase as a fraction of a cycle
    stride: np.ndarray  # (P,) leg swing as a fraction of the renderer's range

    def depth_order(self, frame: int) -> list[int]:
        """Indices of the people in ``frame`` (0-based), farthest first (then by id): the drawing order."""
        present = np.flatnonzero(self.inside[frame])
        return sorted(present.tolist(), key=lambda p: (self.feet[frame, p, 1], p))


def height_at(feet_y: np.ndarray, frame_height: int) -> np.ndarray:
    """A person's height in pixels (before their own height factor) from the row of their feet."""
    slope = (NEAR_HEIGHT - FAR_HEIGHT) / (NEAR_Y - FAR_Y)
    return frame_height * (FAR_HEIGHT + slope * (feet_y / frame_height - FAR_Y))


def make_looks(config: SceneConfig) -> tuple[Appearance, ...]:
    """Each person's look: crossing partners get clearly different tops; lookalikes copy every colour
    of their twin and wear another pattern (a twin's two top colours differ, so the patterns show).
    Twins come two walkers after their original, so a partner is compared with its final look."""
    twins = {twin - 1: first - 1 for first, twin in lookalike_pairs(config)}
    originals = set(twins.values())
    looks: list[Appearance] = []
    for person in range(config.people):
        partner = person ^ 1 if person ^ 1 < person else None
        for attempt in range(100):
            look = make_appearance(rng_for(config.seed, 20, person, attempt), 12)
            if person in twins:
                break
            if partner is None or np.abs(look.top - looks[partner].top).max() > 60:
                break
        if person in originals:
            for attempt in range(100):
                if np.abs(look.top - look.top_second).max() > 60:
                    break
                look = replace(look, top_second=make_appearance(rng_for(config.seed, 21, person, attempt), 12).top_second)
        if person in twins:
            original = looks[twins[person]]
            pattern = next(p for p in LOOKALIKE_PATTERNS if p != original.pattern)
            look = replace(
                original, pattern=pattern, pattern_scale=look.pattern_scale, hair_style=look.hair_style,
                height=look.height, build=look.build, bag_side=look.bag_side,
            )  # fmt: skip
        looks.append(look)
    return tuple(looks)


def walker_paths(config: SceneConfig, pillar_x: float) -> tuple[list[dict], list[str]]:
    """Each person's path: crossing point (x, y) in pixels, crossing frame, unit direction, speed in
    pixels per frame and curvature (pixels of sideways drift per squared pixel walked)."""
    rng = rng_for(config.seed, 22)
    w, h, frames = config.width, config.height, config.frames
    pairs = config.people // 2
    paths, kinds = [], []
    for k in range(pairs):
        kind = PAIR_KINDS[k % len(PAIR_KINDS)]
        frame = frames * (k + 0.5) / pairs + rng.uniform(-0.04, 0.04) * frames
        speed = rng.uniform(0.055, 0.075) if kind != "pillar" else rng.uniform(0.045, 0.055)
        sign = float(rng.choice([-1, 1]))
        if kind == "overlap":
            x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.72, 0.88) * h
            offset = rng.choice([-1, 1]) * rng.uniform(0.02, 0.035) * h
            ends = [((x, y), (sign, 0.0)), ((x, y + offset), (-sign, 0.0))]
        elif kind == "x-cross":
            x, y = rng.uniform(0.35, 0.65) * w, rng.uniform(0.7, 0.82) * h
            slopes = rng.uniform(0.1, 0.16, size=2) * np.array([1, -1])
            ends = [((x, y), (sign, slopes[0])), ((x, y), (sign, slopes[1]))]
        else:
            y = rng.uniform(FAR_Y - 0.02, FAR_Y + 0.01) * h
            ends = [((pillar_x, y), (sign, 0.0)), ((pillar_x, y + rng.uniform(0.01, 0.025) * h), (-sign, 0.0))]
        for index, (point, direction) in enumerate(ends):
            unit = np.array(direction) / np.hypot(*direction)
            pixels = speed * (1 if index == 0 else rng.uniform(0.9, 1.1)) * float(height_at(np.array(point[1]), h))
            bend = rng.uniform(-1, 1) * 0.04 * h / (0.5 * w) ** 2 if kind == "overlap" else 0.0
            paths.append({"point": point, "frame": frame, "direction": unit, "speed": pixels, "bend": bend})
            kinds.append(kind)
    if config.people % 2:
        y = rng.uniform(FAR_Y - 0.02, FAR_Y + 0.01) * h
        frame = frames * (1 / pairs if pairs > 1 else 0.5)
        unit = np.array([float(rng.choice([-1, 1])), rng.uniform(-0.05, 0.05)])
        pixels = rng.uniform(0.045, 0.055) * float(height_at(np.array(y), h))
        paths.append({"point": (pillar_x, y), "frame": frame, "direction": unit / np.hypot(*unit), "speed": pixels, "bend": 0.0})
        kinds.append("alone")
    return paths, kinds


def plan_scene(config: SceneConfig) -> ScenePlan:
    """Plan the whole scene: paths, per-frame boxes, views, gait and visibility."""
    config.validate()
    w, h, frames = config.width, config.height, config.frames
    rng = rng_for(config.seed, 23)
    pillar_x = rng.uniform(0.4, 0.6) * w
    half = PILLAR_WIDTH * w / 2
    pillar = (int(round(pillar_x - half)), 0, int(round(pillar_x + half)), int(round(PILLAR_BASE * h)))
    looks = make_looks(config)
    paths, kinds = walker_paths(config, pillar_x)
    time = np.arange(frames, dtype=np.float64)[:, None]  # (F, 1)
    walked = np.stack([(time[:, 0] - p["frame"]) * p["speed"] for p in paths], axis=1)  # (F, P) pixels
    direction = np.stack([p["direction"] for p in paths])  # (P, 2)
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    bend = np.array([p["bend"] for p in paths])
    point = np.array([p["point"] for p in paths])
    feet = point + walked[..., None] * direction + (bend * walked**2)[..., None] * normal  # (F, P, 2)
    heading = direction + (2 * bend * walked)[..., None] * normal
    person_height = height_at(feet[..., 1], h) * np.array([look.height for look in looks])
    boxes = np.stack(
        [
            np.round(feet[..., 0] - BOX_HALF_WIDTH * person_height),
            np.round(feet[..., 1] - person_height),
            np.round(feet[..., 0] + BOX_HALF_WIDTH * person_height),
            np.round(feet[..., 1] + BOX_BELOW * person_height),
        ],
        axis=-1,
    ).astype(np.int64)
    inside = (boxes[..., 0] < w) & (boxes[..., 2] > 0) & (boxes[..., 1] < h) & (boxes[..., 3] > 0)
    side = np.abs(heading[..., 1]) < 0.6 * np.abs(heading[..., 0])
    view = np.where(side, 2, np.where(heading[..., 1] > 0, 0, 1))
    own_facing = rng.choice([-1, 1], size=len(paths))
    facing = np.where(side, np.where(heading[..., 0] >= 0, 1, -1), own_facing)
    phase0 = rng.uniform(0, 1, size=len(paths))
    gait = np.mod(phase0 + walked / (GAIT_CYCLE * person_height), 1.0)
    stride = rng.uniform(0.3, 0.5, size=len(paths))
    plan = ScenePlan(
        config, looks, tuple(kinds), pillar, feet, person_height, boxes, inside,
        np.zeros((frames, len(paths))), view, facing, gait, stride,
    )  # fmt: skip
    return replace(plan, visibility=visibility(plan))


def visibility(plan: ScenePlan) -> np.ndarray:
    """(F, P) the fraction of each whole box that is in the frame and not behind a nearer box or the pillar."""
    w, h = plan.config.width, plan.config.height
    result = np.zeros(plan.inside.shape)
    x0, y0, x1, y1 = plan.pillar
    for frame in range(plan.inside.shape[0]):
        labels = np.full((h, w), -1, dtype=np.int64)  # who is seen at each pixel; -2: the pillar
        order = plan.depth_order(frame)
        pillar_at = sum(plan.feet[frame, p, 1] < y1 for p in order)  # the pillar stands among the people
        for rank, person in enumerate(order + [None]):
            if rank == pillar_at:
                labels[y0:y1, x0:x1] = -2
            if person is not None:
                a, b, c, d = plan.boxes[frame, person]
                labels[max(b, 0) : max(d, 0), max(a, 0) : max(c, 0)] = person
        counts = np.bincount(labels[labels >= 0], minlength=len(plan.looks))
        areas = (plan.boxes[frame, :, 2] - plan.boxes[frame, :, 0]) * (plan.boxes[frame, :, 3] - plan.boxes[frame, :, 1])
        result[frame] = counts / np.maximum(areas, 1)
    return result


def clipped_boxes(plan: ScenePlan) -> np.ndarray:
    """(F, P, 4) the boxes clipped to the frame."""
    limits = np.array([plan.config.width, plan.config.height] * 2)
    return np.clip(plan.boxes, 0, limits)


def gt_rows(plan: ScenePlan) -> np.ndarray:
    """Ground truth in MOTChallenge order, one row per person in the frame:
    (frame, id, left, top, width, height, 1, 1, visibility), frames and boxes 1-based like MOTChallenge."""
    boxes = clipped_boxes(plan)
    rows = []
    for frame, person in zip(*np.nonzero(plan.inside)):
        a, b, c, d = boxes[frame, person]
        rows.append((frame + 1, person + 1, a + 1, b + 1, c - a, d - b, 1, 1, plan.visibility[frame, person]))
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


def miss_probability(config: SceneConfig, visibility: np.ndarray) -> np.ndarray:
    """The chance that the detector misses a person seen with ``visibility``."""
    chance = np.clip(config.det_miss + config.det_miss_occluded * (1 - visibility), 0, 1)
    return np.where(visibility < config.det_min_visibility, 1.0, chance)


def detections(plan: ScenePlan) -> np.ndarray:
    """Detections made from the ground truth: (frame, source id or 0 if false, left, top, width, height, conf),
    1-based like the ground truth, each frame's rows by falling confidence like a detector's output."""
    config = plan.config
    rng = rng_for(config.seed, 24)
    gt = gt_rows(plan)
    keep = rng.random(len(gt)) >= miss_probability(config, gt[:, 8])
    kept = gt[keep]
    size = kept[:, 4:6]
    centre = kept[:, 2:4] + size / 2 + rng.normal(0, config.det_jitter, size=(len(kept), 2)) * size
    size = size * np.exp(rng.normal(0, config.det_jitter, size=(len(kept), 2)))
    conf = np.clip(0.55 + 0.4 * kept[:, 8] + rng.normal(0, 0.05, len(kept)), 0.3, 1.0)
    found = np.column_stack([kept[:, 0], kept[:, 1], centre - size / 2, size, conf])
    false_counts = rng.poisson(config.det_false, size=config.frames)
    frames = np.repeat(np.arange(1, config.frames + 1), false_counts)
    feet_y = rng.uniform(FAR_Y, NEAR_Y, len(frames)) * config.height
    tall = height_at(feet_y, config.height) * rng.uniform(0.8, 1.1, len(frames))  # a person-sized box
    wide = 2 * BOX_HALF_WIDTH * tall
    left = rng.uniform(0, 1, len(frames)) * (config.width - wide)
    boxes = np.column_stack([left + 1, feet_y - tall + 1, wide, (1 + BOX_BELOW) * tall])
    false = np.column_stack([frames, np.zeros(len(frames)), boxes, rng.uniform(0.3, 0.6, len(frames))])
    rows = np.concatenate([found, false])
    rows[:, 2:6] = clip_box_rows(rows[:, 2:6], config.width, config.height)
    rows = rows[(rows[:, 4] >= 2) & (rows[:, 5] >= 2)]
    return rows[np.lexsort((-rows[:, 6], rows[:, 0]))]


def clip_box_rows(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """1-based (left, top, width, height) rows clipped to the frame [1, width + 1) x [1, height + 1)."""
    left, top = np.clip(boxes[:, 0], 1, width + 1), np.clip(boxes[:, 1], 1, height + 1)
    right = np.clip(boxes[:, 0] + boxes[:, 2], 1, width + 1)
    bottom = np.clip(boxes[:, 1] + boxes[:, 3], 1, height + 1)
    return np.column_stack([left, top, right - left, bottom - top])
