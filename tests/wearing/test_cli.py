"""``metricattack wear`` end to end on tiny data, resuming, and bad inputs (one line, exit code 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from metricattack.cli import main
from metricattack.wearing.setting import WearSetting
from conftest import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random compact model (32x16 input): fast, and enough to run the pipeline."""
    return str(random_checkpoint(tmp_path_factory))


def wear(tiny_root, checkpoint, out, *extra: str) -> int:
    """Run ``metricattack wear`` on the tiny tree with small settings."""
    return main(["wear", "--data-root", str(tiny_root), "--weights", checkpoint, "--out", str(out), "--no-progress",
                 "--identities", "2", "--steps", "2", "--renders", "2", "--eval-renders", "2", "--texture-size", "6", "6",
                 "--transfer", checkpoint, *extra])  # fmt: skip


def test_wear_end_to_end_and_resume(tiny_root, checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert wear(tiny_root, checkpoint, out, "--train-cameras", "1", "--test-cameras", "2", "3") == 0
    record = json.loads((out / "results.json").read_text())
    assert [row["pid"] for row in record["results"]] == [13, 14]
    for row in record["results"]:
        assert row["goal"] == "evade" and 0 <= row["rank1_clean"] <= 1 and 0 <= row["rank1_pattern"] <= 1
        assert row["rank1_random"] is not None and row["transfer_rank1_pattern"] is not None
        assert row["gradient_passes"] == 2 and row["renders"] == 2 * (2 + WearSetting().random_cameras)
    drops = [row["rank1_clean"] - row["rank1_pattern"] for row in record["results"]]
    assert record["summary"]["rank1_drop"] == pytest.approx(sum(drops) / 2)
    for name in ("results.csv", "results.md", "report.html", "pattern_13.png", "random_14.png", "contact_13.png"):
        assert (out / name).is_file()
    with Image.open(out / "pattern_13.png") as pattern:
        assert pattern.size == (48, 48)  # 6x6 texels, 8x8 pixels each
    assert "rank1_drop" in capsys.readouterr().out
    before = (out / "results.json").read_text()
    assert wear(tiny_root, checkpoint, out, "--train-cameras", "1", "--test-cameras", "2", "3", "--resume") == 0
    assert json.loads((out / "results.json").read_text())["results"] == json.loads(before)["results"]
    # the saved print scores again as given
    given = tmp_path / "given"
    assert wear(tiny_root, checkpoint, given, "--pid", "13", "--pattern", str(out / "pattern_13.png"),
                "--goal", "impersonate", "--transfer", "none") == 0  # fmt: skip
    row = json.loads((given / "results.json").read_text())["results"][0]
    assert row["target"] not in (None, 13) and "gradient_passes" not in row


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pid", "999"], "--pid 999: not a test identity"),
        (["--test-cameras"], "--test-cameras: expected at least one camera"),
        (["--train-cameras", "1", "--test-cameras", "1", "2"], "must not be optimised on"),
        (["--test-cameras", "2", "7"], "--test-cameras: expected distinct cameras from 1 to 3"),
        (["--pattern", "WRONG"], "expected 6x6 texels"),
        (["--pattern", "MISSING"], "file not found"),
        (["--target-pid", "14"], "--target-pid: only with --goal impersonate"),
        (["--goal", "impersonate", "--pid", "13", "--target-pid", "13"], "--target-pid 13"),
    ],
)
def test_bad_inputs_stop_with_one_line(tiny_root, checkpoint, tmp_path, capsys, extra, message):
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.zeros((5, 7, 3), dtype=np.uint8)).save(wrong)
    extra = [str(wrong) if e == "WRONG" else str(tmp_path / "missing.png") if e == "MISSING" else e for e in extra]
    assert wear(tiny_root, checkpoint, tmp_path / "out", *extra) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_existing_run_needs_resume(tiny_root, checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert wear(tiny_root, checkpoint, out, "--pid", "13", "--transfer", "none") == 0
    assert wear(tiny_root, checkpoint, out, "--pid", "13", "--transfer", "none") == 2
    assert "--resume" in capsys.readouterr().err
    assert wear(tiny_root, checkpoint, out, "--pid", "13", "--transfer", "none", "--steps", "3", "--resume") == 2
    assert "setting_key" in capsys.readouterr().err
