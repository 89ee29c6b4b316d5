"""Named plans: the robust plan's settings, its YAML twin, and how transfer sources are resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.attacks.steps import PGD, default_iterations
from metricattack.errors import InputError
from metricattack.models import build_model
from metricattack.experiment.auto import AUTO_STEPS
from metricattack.experiment.plans import HEADLINE, PLANS, ROBUST_PGD_PLAN, ROBUST_PLAN, Job, get_plan, resolve_sources, same_weights
from metricattack.cli.config import settings_from_config

ROOT = Path(__file__).resolve().parents[1]


def jobs(plan) -> list[Job]:
    return [item if isinstance(item, Job) else Job(item) for item in plan.settings]


def test_robust_pgd_plan_is_50_steps_of_eps_over_4_with_5_restarts_keeping_the_best():
    white_pgd = [j.setting for j in jobs(ROBUST_PGD_PLAN) if j.setting.attack == "pgd" and j.source is None and j.series is None]
    assert {(s.eps, s.side) for s in white_pgd if s.goal == "untargeted"} == {
        (eps, side) for eps in (2, 4, 8, 16) for side in ("gallery", "query", "both")}  # fmt: skip
    assert [(s.eps, s.side) for s in white_pgd if s.goal == "targeted"] == [(8, "query")]
    for setting in white_pgd:
        rule = setting.step_rule()
        assert isinstance(rule, PGD) and rule.steps == 50 and rule.restarts == 5 and rule.keep_best and rule.random_start
        assert rule.step_size == pytest.approx(rule.eps / 4) and rule.eps == pytest.approx(setting.eps / 255)
    assert ROBUST_PGD_PLAN.headline in white_pgd and ROBUST_PGD_PLAN.sanity_checks and not PLANS["default"].sanity_checks


def test_robust_plan_attacks_with_auto_at_every_eps_and_side():
    white = [j.setting for j in jobs(ROBUST_PLAN) if j.setting.attack == "auto" and j.source is None and j.series is None]
    assert {(s.eps, s.side) for s in white} == {(eps, side) for eps in (2, 4, 8, 16) for side in ("gallery", "query", "both")}
    assert all(s.goal == "untargeted" and s.steps is None for s in white)
    targeted = [j.setting for j in jobs(ROBUST_PLAN) if j.setting.goal == "targeted"]
    assert [(s.attack, s.eps, s.side) for s in targeted] == [("apgd", 8, "query")]
    assert ROBUST_PLAN.headline == HEADLINE and HEADLINE in white and ROBUST_PLAN.sanity_checks


def test_robust_plans_have_the_paper_schedule_transfer_and_convergence():
    for plan, attack in ((jobs(ROBUST_PLAN), "auto"), (jobs(ROBUST_PGD_PLAN), "pgd")):
        ifgsm = [j.setting for j in plan if j.setting.attack == "ifgsm"]
        assert [s.eps for s in ifgsm] == [2, 4, 5, 8, 16]
        assert all(s.step_rule().steps == default_iterations(s.eps) and s.step_rule().step_size == 1 / 255 for s in ifgsm)
        transfer = [j for j in plan if j.source is not None]
        assert {j.source for j in transfer} == {"default"} and [j.setting.eps for j in transfer] == [4, 8, 16]
        assert all(j.setting.attack == attack and j.key == j.setting.key + "-from-default" for j in transfer)
        keys = [j.key for j in plan]
        assert len(keys) == len(set(keys))  # resumable: every job has its own key
    convergence = [j.setting for j in jobs(ROBUST_PGD_PLAN) if j.series == "convergence"]
    assert sorted(s.steps for s in convergence) == [10, 100] and all(s.eps == 8 and s.restarts == 5 for s in convergence)
    convergence = [j.setting for j in jobs(ROBUST_PLAN) if j.series == "convergence"]
    assert convergence == [AttackSetting("auto", 8, steps=2 * AUTO_STEPS)]  # the headline with twice its budget


@pytest.mark.parametrize(("file", "plan"), [("robust-plan.yaml", ROBUST_PLAN), ("robust-pgd-plan.yaml", ROBUST_PGD_PLAN)])
def test_the_yaml_plans_are_the_robust_plans(file, plan):
    config = yaml.safe_load((ROOT / "docs" / file).read_text())
    assert config["sanity_checks"] is True
    assert jobs(plan) == [item if isinstance(item, Job) else Job(item) for item in settings_from_config(config["settings"])]


def test_settings_from_config_reads_source_and_series_and_rejects_unknown_keys():
    parsed = settings_from_config([{"attack": "pgd", "eps": 4}, {"attack": "pgd", "eps": 4, "source": "default"},
                                   {"attack": "pgd", "eps": 4, "steps": 3, "series": "convergence"}])  # fmt: skip
    assert parsed == [AttackSetting("pgd", 4), Job(AttackSetting("pgd", 4), source="default"),
                      Job(AttackSetting("pgd", 4, steps=3), series="convergence")]  # fmt: skip
    with pytest.raises(InputError, match=r"settings\[1\]: expected a mapping with keys among"):
        settings_from_config([{"attack": "pgd", "sauce": "default"}])


def test_unknown_plan_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown plan 'nope'.*default, robust"):
        get_plan("nope")


def test_resolve_sources_loads_each_source_once_and_drops_transfer_from_the_model_itself():
    torch.manual_seed(0)
    victim = NamedModel("default", build_model("compact", input_size=(32, 16)))
    other = NamedModel("default", build_model("compact", input_size=(32, 16)))
    setting = AttackSetting("pgd", 4)
    settings = [setting, Job(setting, source="a"), Job(AttackSetting("pgd", 8), source="a"), Job(setting, source="self")]
    loads = []

    def load(reference: str) -> NamedModel:
        loads.append(reference)
        return other if reference == "a" else NamedModel("copy", victim.model)

    kept, models, dropped = resolve_sources(settings, victim, load)
    assert kept == settings[:3] and dropped == [settings[3].key] and loads == ["a", "self"]
    assert list(models) == ["a"] and models["a"].name == "default#source"  # never reported under the victim's name
    assert same_weights(victim.model, victim.model) and not same_weights(victim.model, other.model)
