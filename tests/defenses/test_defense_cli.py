"""metricattack train --defense end to end on tiny data: options from the CLI and YAML land in the checkpoint,
the purifier is saved and loaded as one model f∘P, and bad options are one line with exit code 2."""

from __future__ import annotations

import json
import re

import pytest
import torch

from metricattack.cli import main
from metricattack.models import load_model

SMALL = ["--train-ids", "8", "--test-ids", "6", "--cameras", "3", "--height", "32", "--width", "16"]
TRAIN = ["--epochs", "1", "--batch-size", "16", "--input-size", "32", "16"]


@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("defense-cli") / "data"
    assert main(["synth", "--out", str(root), "--seed", "3", "--no-progress", *SMALL]) == 0
    return ["--dataset", "market1501", "--data-root", str(root), "--no-progress"]


@pytest.fixture(scope="module")
def base_weights(data_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("defense-cli") / "base"
    assert main(["train", *data_args, *TRAIN, "--out", str(out)]) == 0
    return out / "model.safetensors"


def test_est_options_from_yaml_and_cli_are_stored(data_args, tmp_path):
    config = tmp_path / "defense.yaml"
    config.write_text("defense: est\ndefense_eps: 6\ndefense-steps: 2\n")
    out = tmp_path / "est"
    assert main(["train", *data_args, *TRAIN, "--config", str(config), "--defense-step-size", "3", "--out", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["defense"] == {"name": "est", "eps": 6.0, "step_size": 3.0, "steps": 2, "random_start": True, "clean_weight": 0.0}
    assert "--defense-step-size 3" in meta["train_command"] and meta["train_seconds"] > 0


def test_a_chain_of_fine_tunings_records_every_command_that_made_its_starting_weights(data_args, base_weights, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    defended = ["--defense", "est", "--defense-steps", "1", "--weights", str(base_weights), "--out", str(first)]
    assert main(["train", *data_args, *TRAIN, *defended]) == 0
    assert main(["train", *data_args, *TRAIN, "--weights", str(first / "model.safetensors"), "--out", str(second)]) == 0
    base, middle, last = (json.loads(path.read_text()) for path in
                          (base_weights.with_suffix(".json"), first / "model.json", second / "model.json"))
    assert "init_recipe" not in base and middle["init_recipe"] == [base["train_command"]]
    assert last["init_recipe"] == [base["train_command"], middle["train_command"]]
    assert last["init_weights"] == str(first / "model.safetensors") and "defense" not in last


def test_purifier_is_saved_and_loaded_as_one_model(data_args, base_weights, tmp_path, capsys):
    out = tmp_path / "purifier"
    args = ["train", *data_args, *TRAIN, "--defense", "purifier", "--weights", str(base_weights),
            "--defense-steps", "1", "--no-defense-random-start", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["spec"]["purifier"] == "denoiser" and meta["defense"]["random_start"] is False
    purified, _ = load_model(None, out / "model.safetensors")
    base, _ = load_model(None, base_weights)
    assert purified.purifier is not None
    images = torch.rand(2, 3, 32, 16)
    with torch.no_grad():  # the frozen model is unchanged; only the purifier in front of it differs
        assert torch.allclose(purified.forward_unpurified(images), base(images), atol=1e-5)
        assert not torch.allclose(purified(images), base(images), atol=1e-5)
    capsys.readouterr()
    assert main(["evaluate", *data_args, "--weights", str(out / "model.safetensors")]) == 0
    assert f"mAP {100 * meta['clean_metrics']['mAP']:.1f}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--defense", "est", "--defense-eps", "-1"], r"--defense-eps must be in \[0, 255\] pixel units"),
        (["--defense", "shield"], "--defense: unknown defense 'shield' \\(expected one of offline, est"),
        (["--defense", "purifier"], "--defense purifier needs --weights"),
        (["--defense-eps", "4"], "--defense-eps: defense options need --defense NAME"),
        (["--defense", "act", "--defense-beta", "2"], "--defense act does not take --defense-beta"),
    ],
)
def test_bad_defense_options(extra, message, data_args, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", *data_args, *TRAIN, *extra, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("metricattack: error: ") and "\n" not in error
    assert re.search(message, error), error
    assert not out.exists()
