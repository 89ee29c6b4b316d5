"""`--attack apgd` and `--attack-loss margin` from the command line and a config's `settings:`, end to end on tiny data."""

from __future__ import annotations

import json
import re

import pytest

from metricattack.cli import main
from metricattack.models import save_checkpoint

from conftest import synth_root

SMALL = ["--train-ids", "8", "--test-ids", "6", "--cameras", "3", "--height", "32", "--width", "16"]


@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
    return ["--dataset", "market1501", "--data-root", str(synth_root(tmp_path_factory, "objectives", 3, SMALL)), "--no-progress"]


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory):
    return str(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_model))


def test_help_lists_apgd_and_the_objectives(capsys):
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert "one of fgsm, ifgsm, mifgsm, pgd, apgd, auto, uap, blackbox" in printed and "paper or margin" in printed


def test_attack_with_apgd_and_the_margin_objective(data_args, weights, tmp_path):
    out = tmp_path / "apgd"
    args = ["attack", *data_args, "--weights", weights, "--attack", "apgd", "--attack-loss", "margin", "--eps", "6",
            "--steps", "4", "--side", "both", "--out", str(out), "--examples", "0"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((out / "results.json").read_text())
    (row,) = record["results"]
    assert row["key"] == "apgd-linf-eps6-both-untargeted-steps4-margin"
    assert (row["attack"], row["attack_loss"], row["steps"]) == ("apgd", "margin", 4)
    assert row["gradient_passes"] == 4 * row["num_attacked"] and row["mAP"] < record["clean"]["tiny"]["mAP"]


def test_run_takes_apgd_and_the_margin_objective_from_a_config(data_args, weights, tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("settings:\n  - {attack: apgd, eps: 4, steps: 3, norm: l2}\n"
                      "  - {attack: apgd, eps: 4, steps: 3, restarts: 2, attack_loss: margin}\n")  # fmt: skip
    out = tmp_path / "run"
    assert main(["run", *data_args, "--weights", weights, "--config", str(config), "--out", str(out), "--examples", "0"]) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [row["key"] for row in rows] == ["apgd-l2-eps4-gallery-untargeted-steps3",  # the default objective: no suffix
                                            "apgd-linf-eps4-gallery-untargeted-steps3-restarts2-margin"]  # fmt: skip
    assert [row["attack_loss"] for row in rows] == ["paper", "margin"]
    assert rows[1]["gradient_passes"] == 2 * 3 * rows[1]["num_attacked"]


@pytest.mark.parametrize(
    "options,message",
    [
        (["--attack", "apgd", "--step-size", "1"], r"--attack apgd does not take --step-size \(it takes --steps, --norm, --restarts\)"),
        (["--attack-loss", "hinge"], r"--attack-loss: unknown objective 'hinge' \(expected one of paper, margin\)"),
        (["--attack-loss", "margin", "--goal", "targeted"], r"--attack-loss margin is non-targeted only"),
        (["--attack-loss", "margin", "--attack", "uap"], r"--attack-loss margin is for the gradient step rules \(fgsm, ifgsm, mifgsm, pgd, apgd\), not --attack uap"),
        (["--attack-loss", "margin", "--attack-distance", "cosine"], r"--attack-distance does not apply to --attack-loss margin"),
    ],
)
def test_options_that_do_not_go_together_are_one_line_errors(data_args, weights, options, message, capsys):
    assert main(["attack", *data_args, "--weights", weights, "--eps", "4", *options]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert re.search(message, error), error


def test_a_config_setting_with_an_unknown_objective_names_its_entry(data_args, weights, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("settings:\n  - {attack: apgd, eps: 4, attack_loss: dlr}\n")
    assert main(["run", *data_args, "--weights", weights, "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "settings[1]: --attack-loss: unknown objective 'dlr'" in capsys.readouterr().err


def test_attack_with_auto_records_each_stages_passes_and_the_robustness_score(data_args, weights, tmp_path):
    out = tmp_path / "auto"
    args = ["attack", *data_args, "--weights", weights, "--attack", "auto", "--eps", "6", "--steps", "3", "--side", "both",
            "--out", str(out), "--examples", "0"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((out / "results.json").read_text())
    row = record["results"][0]
    assert row["attack"] == "auto" and row["steps"] == 3 and row["mAP"] < record["clean"][row["target"]]["mAP"]
    assert list(row["stages"]) == ["apgd-paper", "apgd-margin", "apgd-targeted", "square"]
    assert row["gradient_passes"] == sum(stage["gradient_passes"] for stage in row["stages"].values())
    score = record["robustness"][row["target"]]
    assert score["cells"] == [["linf", 6, "both"]] and score["score"] == row["mAP"] / record["clean"][row["target"]]["mAP"]
