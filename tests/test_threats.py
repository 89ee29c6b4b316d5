"""Threat models end to end: source groups and the transfer sweep, UAP and black-box from YAML, the report's
sections; the zoo's commands, first-use training and shipped weights."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict

import pytest
import torch

from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.cli import main
from metricattack.cli.parser import build_parser
from metricattack.cli.train import train_command
from metricattack.experiment.inputs import load_data
from metricattack.models import build_model, save_checkpoint
from metricattack.models import zoo
from metricattack.experiment.plans import PLANS, source_groups
from metricattack.models.retrieval import evaluate_model
from metricattack.experiment.sweep import run_sweep
from metricattack.training import zoo as zoo_training
from metricattack.training.loop import TrainConfig, train_model
from metricattack.experiment.registry import check_setting
from campaigns import evaluate_outcome, make_campaign, run


def test_source_groups_are_singles_then_leave_one_out_ensembles():
    a, b, c = (NamedModel(name, None) for name in "abc")
    names = [[m.name for m in group] for group in source_groups([a, b, c])]
    assert names == [["a"], ["b"], ["c"], ["b", "c"], ["a", "c"], ["a", "b"]]
    assert [[m.name for m in group] for group in source_groups([a, b])] == [["a"], ["b"]]


def test_transfer_sweep_has_a_row_per_group_and_target_and_resumes(tiny_data, tiny_model, tmp_path):
    torch.manual_seed(1)
    other = build_model("compact", input_size=(64, 32)).eval()  # random weights: another model to transfer to
    models = [NamedModel("tiny", tiny_model), NamedModel("other", other), NamedModel("third", tiny_model)]
    campaign = make_campaign(tiny_data, models[:1], models, torch.device("cpu"), batch_size=16, progress=False)
    settings = [AttackSetting("fgsm", 4, side="query")]
    record = run_sweep(campaign, settings, tmp_path, "test", examples=1, source_groups=source_groups(models))
    pairs = [(row["source"], row["target"]) for row in record["results"]]
    sources = ["tiny", "other", "third", "other+third", "tiny+third", "tiny+other"]
    assert pairs == [(s, t) for s in sources for t in ("tiny", "other", "third")]
    # the white-box row of a single source is what a one-model campaign gets
    alone, _ = run(campaign, settings[0], sources=models[:1])
    assert record["results"][0]["mAP"] == pytest.approx(evaluate_outcome(campaign, alone, models[0])[0]["mAP"])
    again = run_sweep(campaign, settings, tmp_path, "test", resume=True, examples=1, source_groups=source_groups(models))
    assert [row["seconds"] for row in again["results"]] == [row["seconds"] for row in record["results"]]


def test_yaml_run_with_uap_blackbox_and_a_transfer_target_builds_every_section(tiny_model, tiny_root, tmp_path):
    weights = save_checkpoint(tmp_path / "ckpt" / "tiny", tiny_model)
    torch.manual_seed(2)
    other = save_checkpoint(tmp_path / "ckpt" / "other", build_model("compact", input_size=(64, 32)))
    config = tmp_path / "threats.yaml"
    config.write_text(
        f"weights: {weights}\ntarget_model: [{other}]\n"
        "settings:\n"
        "  - {attack: ifgsm, eps: 4, steps: 1}\n"
        "  - {attack: uap, eps: 4, steps: 1}\n"
        "  - {attack: blackbox, eps: 8, side: query, steps: 0}\n"
        "  - {attack: blackbox, eps: 8, side: query, steps: 5}\n"
    )
    out = tmp_path / "run"
    args = ["run", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", "--config", str(config),
            "--out", str(out), "--examples", "1"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((out / "results.json").read_text())
    rows = {(row["key"], row["target"]): row for row in record["results"]}
    clean = record["clean"]["tiny"]
    budget0 = rows[("blackbox-linf-eps8-query-untargeted-steps0", "tiny")]
    assert {k: budget0[k] for k in clean} == clean  # budget 0: the clean result
    assert rows[("blackbox-linf-eps8-query-untargeted-steps5", "tiny")]["steps"] == 5
    page = (out / "report.html").read_text()
    for title in ("<h2>Transfer</h2>", "<h2>Query-limited black-box attack</h2>", "<h2>Universal perturbations</h2>"):
        assert title in page
    for figure in ("transfer.png", "budgets.png"):
        assert (out / "figures" / figure).is_file()
    assert (out / record["examples"]["uap-linf-eps4-gallery-untargeted-steps1"]["perturbation"]["image"]).is_file()


def test_every_plan_validates_and_the_transfer_plan_names_zoo_models():
    for plan in PLANS.values():
        for item in plan.settings:
            check_setting(getattr(item, "setting", item))  # a Job wraps its setting
    assert set(PLANS["transfer"].models) <= set(zoo.zoo_names())
    assert {"compact", "mobilenet_v3_small", "resnet18"} <= set(zoo.zoo_names())


@pytest.mark.parametrize("name", zoo.zoo_names())
def test_each_zoo_command_is_a_valid_train_command_with_the_entrys_options(name):
    entry = zoo.zoo_entry(name)
    parser, _ = build_parser()
    args = parser.parse_args(shlex.split(train_command(entry))[1:])
    config = TrainConfig(**entry.train_options)
    assert all(getattr(args, key) == value for key, value in asdict(config).items() if key not in ("batch_size", "milestones"))
    assert args.model == entry.arch
    assert tuple(args.input_size or ()) == tuple(entry.model_options.get("input_size", ()))
    assert args.last_stride == entry.model_options.get("last_stride")


def test_a_zoo_model_is_trained_on_first_use_like_the_train_command_then_cached(tiny_data, monkeypatch):
    entry = zoo.ZooEntry("tiny_zoo", "compact", {"epochs": 1, "lr": 3e-3, "seed": 4, "batch_size": 16, "warmup_epochs": 1},
                         {"input_size": (64, 32)})  # fmt: skip
    monkeypatch.setitem(zoo.ZOO, "tiny_zoo", entry)
    assert not zoo.zoo_available("tiny_zoo")
    model, meta = zoo_training.obtain_zoo_model("tiny_zoo", tiny_data, torch.device("cpu"), train_command(entry), progress=False)
    assert zoo.zoo_available("tiny_zoo") and meta["train_command"] == train_command(entry)
    torch.manual_seed(4)  # what `metricattack train --seed 4` does before building the model
    direct = build_model("compact", num_classes=tiny_data.num_train_pids, input_size=(64, 32))
    train_model(direct, tiny_data.train, TrainConfig(**entry.train_options), zoo.cache_root() / "direct", torch.device("cpu"),
                progress=False)  # fmt: skip
    for key, value in direct.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    assert meta["clean_metrics"]["mAP"] == pytest.approx(evaluate_model(direct, tiny_data, torch.device("cpu"), progress=False).mAP)
    monkeypatch.setattr(zoo_training, "train_model", lambda *a, **k: pytest.fail("trained twice"))
    zoo_training.obtain_zoo_model("tiny_zoo", tiny_data, torch.device("cpu"), train_command(entry), progress=False)


@pytest.mark.parametrize("name", [n for n in zoo.zoo_names() if zoo.ZOO[n].shipped and n != "compact"])
def test_shipped_zoo_weights_are_small_fp16_and_keep_their_metrics(name, monkeypatch):
    monkeypatch.delenv("METRICATTACK_CACHE")  # the real cached default data
    path = zoo.zoo_checkpoint(name)
    assert path.parent == zoo.SHIPPED_DIR and path.stat().st_size < 5_000_000
    model, meta = zoo.load_zoo_model(name)
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(path)).values() if t.is_floating_point()} == {torch.float16}
    metrics = evaluate_model(model, load_data(None, None, progress=False), torch.device("cpu"), progress=False)
    assert metrics.mAP == pytest.approx(meta["clean_metrics"]["mAP"], abs=2e-3)  # measured with the fp16 weights
    assert meta["train_command"] == train_command(zoo.zoo_entry(name))


def test_zoo_list_prints_every_model_and_an_unknown_zoo_name_is_one_line(capsys, tmp_path):
    assert main(["zoo", "--list"]) == 0
    printed = capsys.readouterr().out
    for name in zoo.zoo_names():
        assert f"| {name} |" in printed and train_command(zoo.zoo_entry(name)) in printed
    assert main(["run", "--zoo-model", "nope", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "unknown zoo model 'nope' (expected one of compact, " in capsys.readouterr().err
