"""The synthetic tracking scene: ground truth against its frames, visibility, detections against the
configured rates, lookalikes, the gait, determinism, the MOTChallenge files and the cache."""

from __future__ import annotations

import configparser
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metricattack.data.synthetic.canvas import Canvas
from metricattack.data.synthetic.scene import (
    SceneConfig,
    detections,
    gt_rows,
    lookalike_pairs,
    miss_probability,
    plan_scene,
)
from metricattack.data.synthetic.scene_render import (
    ScriptedGait,
    cached_scene,
    render_background,
    render_frame,
    scene_camera,
    write_scene,
)
from metricattack.data.synthetic.person import render_person
from metricattack.errors import InputError

TINY = SceneConfig.tiny()


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "tiny", TINY, progress=False)


def read_rows(path: Path, columns: int) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2).reshape(-1, columns)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sequence_layout_and_seqinfo(tiny_scene):
    info = configparser.ConfigParser()
    info.read(tiny_scene / "seqinfo.ini")
    seq = info["Sequence"]
    assert (seq["imDir"], seq["imExt"], seq["name"]) == ("img1", ".png", "tiny")
    assert (int(seq["frameRate"]), int(seq["seqLength"])) == (TINY.fps, TINY.frames)
    assert (int(seq["imWidth"]), int(seq["imHeight"])) == (TINY.width, TINY.height)
    names = sorted(p.name for p in (tiny_scene / "img1").iterdir())
    assert names == [f"{f:06d}.png" for f in range(1, TINY.frames + 1)]
    assert Image.open(tiny_scene / "img1" / names[0]).size == (TINY.width, TINY.height)
    det = read_rows(tiny_scene / "det" / "det.txt", 10)
    assert len(det) > 0 and (det[:, 1] == -1).all() and (det[:, 7:] == -1).all()
    assert ((det[:, 6] > 0) & (det[:, 6] <= 1)).all()


def test_ground_truth_matches_the_frames(tiny_scene):
    """Outside every gt box a frame equals the empty scene exactly; inside a well visible box it differs."""
    gt = read_rows(tiny_scene / "gt" / "gt.txt", 9)
    plan = plan_scene(TINY)
    camera = scene_camera(TINY)
    empty = render_frame(plan, 0, camera, render_background(plan, camera), people=False)
    assert set(gt[:, 1].astype(int)) == set(range(1, TINY.people + 1))
    for frame in range(1, TINY.frames + 1):
        pixels = np.asarray(Image.open(tiny_scene / "img1" / f"{frame:06d}.png"))
        changed = (pixels != empty).any(axis=2)
        covered = np.zeros_like(changed)
        for _, _, left, top, width, height, _, _, vis in gt[gt[:, 0] == frame]:
            x0, y0 = int(left) - 1, int(top) - 1  # MOTChallenge boxes are 1-based
            covered[y0 : y0 + int(height), x0 : x0 + int(width)] = True
            if vis >= 0.5:
                assert changed[y0 : y0 + int(height), x0 : x0 + int(width)].any(), (frame, left, top)
        assert not (changed & ~covered).any(), frame
    assert changed.any()


def test_boxes_inside_the_frame_and_visibility(tiny_scene):
    gt = read_rows(tiny_scene / "gt" / "gt.txt", 9)
    left, top, width, height, vis = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5], gt[:, 8]
    assert (width >= 1).all() and (height >= 1).all() and (left >= 1).all() and (top >= 1).all()
    assert (left + width - 1 <= TINY.width).all() and (top + height - 1 <= TINY.height).all()
    assert ((vis >= 0) & (vis <= 1)).all()
    assert (gt[:, 6:8] == 1).all()


@pytest.mark.parametrize("config", [TINY, SceneConfig()], ids=["tiny", "default"])
def test_visibility_against_the_geometry(config):
    """Visibility is 0 for a box entirely behind the pillar, 1 for a box in the frame that no nearer box
    or pillar touches, and strictly between for boxes partly hidden by a nearer one."""
    plan = plan_scene(config)
    px0, py0, px1, py1 = plan.pillar
    hidden = whole = partly = 0
    for frame, person in zip(*np.nonzero(plan.inside)):
        x0, y0, x1, y1 = plan.boxes[frame, person]
        feet = plan.feet[frame, person, 1]
        vis = plan.visibility[frame, person]
        behind_pillar = feet < py1 and px0 <= x0 and x1 <= px1 and y0 >= py0 and y1 <= py1
        nearer = [q for q in np.flatnonzero(plan.inside[frame]) if plan.feet[frame, q, 1] > feet]
        overlaps = [q for q in nearer if (np.minimum(x1, plan.boxes[frame, q, 2]) > np.maximum(x0, plan.boxes[frame, q, 0]))
                    and (np.minimum(y1, plan.boxes[frame, q, 3]) > np.maximum(y0, plan.boxes[frame, q, 1]))]  # fmt: skip
        touches_pillar = feet < py1 and min(x1, px1) > max(x0, px0) and min(y1, py1) > max(y0, py0)
        in_frame = x0 >= 0 and y0 >= 0 and x1 <= config.width and y1 <= config.height
        if behind_pillar:
            assert vis == 0
            hidden += 1
        elif in_frame and not overlaps and not touches_pillar:
            assert vis == pytest.approx(1.0)
            whole += 1
        elif overlaps and not touches_pillar and in_frame:
            assert 0 <= vis < 1
            partly += 1
    assert hidden >= 5 and whole > 0 and partly > 0  # the scene has full occlusions and overlaps


def test_same_seed_same_bytes_other_seed_differs(tiny_scene, tmp_path):
    again = write_scene(tmp_path / "tiny", TINY, progress=False)
    assert digest(again) == digest(tiny_scene)
    other = write_scene(tmp_path / "other", SceneConfig.tiny(seed=1), progress=False)
    first, second = digest(tiny_scene), digest(other)
    assert first["gt/gt.txt"] != second["gt/gt.txt"]
    assert first["img1/000001.png"] != second["img1/000001.png"]


def test_detections_follow_the_configured_rates():
    """Over the default plan: misses at the configured visibility-dependent rate (computed by hand from
    the gt's visibility), false detections at ``det_false`` per frame, box jitter at ``det_jitter``."""
    config = SceneConfig()
    plan = plan_scene(config)
    gt, det = gt_rows(plan), detections(plan)
    expected = np.where(gt[:, 8] < config.det_min_visibility, 1.0,
                        np.clip(config.det_miss + config.det_miss_occluded * (1 - gt[:, 8]), 0, 1))  # fmt: skip
    np.testing.assert_allclose(miss_probability(config, gt[:, 8]), expected)
    found = {(int(f), int(p)) for f, p in det[det[:, 1] > 0][:, :2]}
    missed = np.array([(int(f), int(p)) not in found for f, p in gt[:, :2]])
    assert missed[gt[:, 8] < config.det_min_visibility].all()
    spread = np.sqrt((expected * (1 - expected)).sum())
    assert abs(missed.sum() - expected.sum()) < 4 * spread
    assert 0.05 < missed.mean() < 0.6  # some misses, not most
    false = (det[:, 1] == 0).sum()
    assert abs(false - config.det_false * config.frames) < 4 * np.sqrt(config.det_false * config.frames) + 1
    by_key = {(int(r[0]), int(r[1])): r for r in gt}
    true = det[det[:, 1] > 0]
    truth = np.stack([by_key[(int(f), int(p))] for f, p in true[:, :2]])
    whole = truth[:, 8] == 1  # in the frame and unoccluded: the detection is not clipped
    shift = ((true[:, 2] + true[:, 4] / 2) - (truth[:, 2] + truth[:, 4] / 2))[whole] / truth[whole, 4]
    ratio = np.log(true[whole, 5] / truth[whole, 5])
    assert np.std(shift) == pytest.approx(config.det_jitter, rel=0.25)
    assert np.std(ratio) == pytest.approx(config.det_jitter, rel=0.25)
    for frame in np.unique(det[:, 0]):
        conf = det[det[:, 0] == frame, 6]
        assert (np.diff(conf) <= 0).all()  # by falling confidence, not by identity


def test_lookalikes_share_colours_and_crossing_partners_differ():
    for config in (TINY, SceneConfig(), SceneConfig(people=8, lookalikes=2, seed=3)):
        plan = plan_scene(config)
        pairs = lookalike_pairs(config)
        assert len(pairs) == config.lookalikes
        for first, twin in pairs:
            a, b = plan.looks[first - 1], plan.looks[twin - 1]
            for part in ("skin", "hair", "top", "top_second", "bottom", "shoes"):
                np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
            assert a.pattern != b.pattern
            assert np.abs(a.top - a.top_second).max() > 60  # the patterns show
            assert (first - 1) // 2 != (twin - 1) // 2  # never crossing partners
        for person in range(1, config.people - config.people % 2, 2):
            assert np.abs(plan.looks[person].top - plan.looks[person - 1].top).max() > 60


def test_scene_limits_for_the_default():
    plan = plan_scene(SceneConfig())
    assert plan.inside.sum(axis=1).max() <= 5
    shown = plan.person_height[plan.inside]
    assert 85 <= shown.min() and shown.max() <= 165
    gone = [np.flatnonzero(plan.inside[:, p]) for p in range(len(plan.looks))]
    assert sum(f[0] > 0 or f[-1] < len(plan.inside) - 1 for f in gone) >= 5  # people enter and leave


def test_the_gait_follows_the_scripted_phase():
    """``render_person`` takes its phase from the first scripted draw: a full cycle later it draws the
    same pixels, half a cycle later (legs swung the other way) other ones."""
    plan = plan_scene(TINY)

    def draw(phase: float) -> np.ndarray:
        pixels = np.zeros((80, 40, 3), dtype=np.float32)
        render_person(Canvas(pixels, 20, 4, 72, 1, 0.3), plan.looks[0], "side", ScriptedGait(np.random.default_rng(0), phase, 0.5))
        return pixels

    assert draw(0.25).any()
    np.testing.assert_array_equal(draw(0.25), draw(1.25))
    assert not np.array_equal(draw(0.25), draw(0.75))  # legs swung the other way


def test_bad_config_and_occupied_folder(tmp_path):
    with pytest.raises(InputError, match="lookalikes must be between 0 and 1 for 3 people"):
        SceneConfig(people=3, lookalikes=2)
    with pytest.raises(InputError, match="det_miss must be a probability"):
        SceneConfig(det_miss=1.5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        write_scene(tmp_path / "full", TINY, progress=False)


def test_cached_scene_renders_once(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path))
    folder = cached_scene(TINY, progress=False)
    assert folder == tmp_path / "scenes" / TINY.key and (folder / "gt" / "gt.txt").is_file()
    stamp = (folder / "img1" / "000001.png").stat().st_mtime_ns
    assert cached_scene(TINY, progress=False) == folder
    assert (folder / "img1" / "000001.png").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
