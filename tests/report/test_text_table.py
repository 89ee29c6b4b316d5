"""The printed table: one line per setting that reads differently from every other, and the default run's columns kept."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from metricattack.experiment.auto import AUTO_STEPS
from metricattack.experiment.plans import DEFAULT_PLAN, ROBUST_PGD_PLAN, ROBUST_PLAN, Job
from metricattack.experiment.results import distinguishing_columns, text_table

ROOT = Path(__file__).resolve().parents[2]
SAME_METRICS = {"mAP": 0.105, "rank1": 0.1, "rank5": 0.2, "mINP": 0.05, "seconds": 1.0}  # alike, so only settings differ


def record_of(jobs: list, model: str, steps_of=lambda setting: setting.steps) -> dict:
    """A record with one row per job as the sweep writes it, every row with the same metrics."""
    rows = []
    for item in jobs:
        job = item if isinstance(item, Job) else Job(item)
        series = {} if job.series is None else {"series": job.series}
        fields = {**asdict(job.setting), "steps": steps_of(job.setting)}
        rows.append({"key": job.key, **fields, "source": job.source or model, "target": model, "pipeline": "plain",
                     **series, **SAME_METRICS})  # fmt: skip
    return {"pipelines": [{"name": "plain"}], "clean": {model: {"mAP": 0.7}}, "results": rows}


def body(table: str) -> list[str]:
    return table.splitlines()[1 + 1:]  # after the header and the clean row


@pytest.mark.parametrize(("plan", "headline", "steps"), [
    (ROBUST_PLAN, "auto", sorted([[str(AUTO_STEPS), "default"], [str(AUTO_STEPS), "default-robust"],
                                  [str(2 * AUTO_STEPS), "default-robust"]])),
    (ROBUST_PGD_PLAN, "pgd", [["10", "default-robust"], ["100", "default-robust"], ["50", "default"], ["50", "default-robust"]]),
])  # fmt: skip
def test_every_robust_plan_setting_prints_a_line_of_its_own(plan, headline, steps):
    record = record_of(list(plan.settings), "default-robust", steps_of=lambda setting: setting.steps or AUTO_STEPS)
    table = text_table(record)
    lines = body(table)
    assert len(lines) == len(plan.settings) == len(set(lines))
    header = table.splitlines()[0].split()
    assert header[:7] == ["attack", "eps", "side", "goal", "steps", "source", "model"]
    found = [line.split()[:7] for line in lines if line.split()[:4] == [headline, "8", "gallery", "untargeted"]]
    assert sorted(cells[4:6] for cells in found) == steps


def test_only_the_columns_that_separate_rows_are_added():
    rows = [{"attack": "pgd", "steps": 50, "restarts": 5, "series": None, "source": "a"},
            {"attack": "pgd", "steps": 50, "restarts": 5, "series": "convergence", "source": "b"},
            {"attack": "ifgsm", "steps": 6, "restarts": None, "series": None, "source": "a"}]  # fmt: skip
    assert distinguishing_columns(rows, ("attack",)) == ["series"]  # steps and restarts follow the attack
    assert distinguishing_columns(rows[:1] + rows[2:], ("attack",)) == []


def test_the_default_plan_prints_the_stored_columns():
    """The paper's steps differ with eps, yet eps already tells the rows apart: the default table keeps its columns."""
    record = record_of(list(DEFAULT_PLAN.settings), "default", steps_of=lambda setting: int(min(setting.eps + 4, 1.25 * setting.eps)))
    stored = (ROOT / "docs" / "default-run.txt").read_text().splitlines()
    assert text_table(record).splitlines()[0].split() == stored[0].split()
    assert [line.split()[:5] for line in body(text_table(record))] == [line.split()[:5] for line in stored[2:]]


def test_the_objective_tells_two_otherwise_equal_apgd_rows_apart():
    from metricattack.experiment.setting import AttackSetting

    settings = [AttackSetting("apgd", 4.0, steps=100), AttackSetting("apgd", 4.0, steps=100, attack_loss="margin")]
    table = text_table(record_of(settings, "default"))
    assert table.splitlines()[0].split()[:5] == ["attack", "eps", "side", "goal", "loss"]
    assert sorted(line.split()[4] for line in body(table)) == ["margin", "paper"]
