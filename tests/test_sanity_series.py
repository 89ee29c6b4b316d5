"""The sanity checks' curves (``series_of``): rows of different pipelines, objectives or distances are never mixed."""

from __future__ import annotations

import pytest

from metricattack.experiment.sanity import convergence_check, monotone_check, series_of


def row(mAP: float, eps: float = 8, steps: int = 50, pipeline: str = "plain", **setting) -> dict:
    """A white-box result row of model ``m`` as the sweep writes it: every setting field, the pipeline, the metrics."""
    fields = {"attack": "pgd", "norm": "linf", "side": "gallery", "goal": "untargeted", "target_pid": None, "restarts": 5,
              "attack_distance": "sqeuclidean", "schedule": "paper", "attack_loss": "paper", **setting}  # fmt: skip
    key = "-".join(str(value) for value in (*fields.values(), eps, steps, pipeline))
    return {"key": key, **fields, "eps": eps, "steps": steps, "step_size": eps / 4, "source": "m", "target": "m",
            "pipeline": pipeline, "mAP": mAP}  # fmt: skip


def falling(maps: tuple[float, ...], **setting) -> list[dict]:
    """One eps curve (eps 2, 4, 8) that falls: each row's mAP below the one before."""
    return [row(mAP, eps=eps, **setting) for mAP, eps in zip(maps, (2, 4, 8))]


# Two falling curves each; mixed in one group and sorted by eps, the second's eps-2 row (0.7) follows the first's (0.6).
TWO_CURVES = {
    "pipeline": (falling((0.6, 0.4, 0.2)), falling((0.7, 0.5, 0.3), pipeline="flip")),
    "attack_loss": (falling((0.6, 0.4, 0.2)), falling((0.7, 0.5, 0.3), attack_loss="margin")),
    "attack_distance": (falling((0.6, 0.4, 0.2)), falling((0.7, 0.5, 0.3), attack_distance="cosine")),
    "schedule": (falling((0.6, 0.4, 0.2)), falling((0.7, 0.5, 0.3), schedule="fast")),
}


@pytest.mark.parametrize("differing", sorted(TWO_CURVES))
def test_curves_that_differ_in_one_field_are_separate_and_raise_no_alarm(differing):
    first, second = TWO_CURVES[differing]
    curves = series_of(first + second, "eps")
    assert sorted([row["mAP"] for row in curve] for curve in curves) == [[0.6, 0.4, 0.2], [0.7, 0.5, 0.3]]
    assert monotone_check({"results": first + second}, "m")["passed"] is True


@pytest.mark.parametrize("differing", sorted(TWO_CURVES))
def test_a_real_rise_on_one_curve_is_still_flagged(differing):
    first, second = TWO_CURVES[differing]
    rising = second + [{**second[-1], "key": "rise", "eps": 16, "mAP": 0.35}]  # 0.30 at eps 8 -> 0.35 at eps 16
    check = monotone_check({"results": first + rising}, "m")
    assert check["passed"] is False and check["rises"] == ["rise (30.0 -> 35.0)"]


def test_convergence_series_of_two_pipelines_are_judged_apart():
    # The sweep writes one row per pipeline for each job: plain then flip. Both converged (100 steps lower mAP by
    # half a point), but flip sits 10 points below plain, so mixed and sorted by steps the last two rows are
    # plain-100 (0.30) then flip-100 (0.195): a false "NOT converged".
    rows = [row(0.305, steps=50), row(0.20, steps=50, pipeline="flip"), row(0.30, steps=100), row(0.195, steps=100, pipeline="flip")]
    series = series_of(rows, "steps")
    assert sorted([(row["pipeline"], row["steps"]) for row in rows] for rows in series) == [
        [("flip", 50), ("flip", 100)], [("plain", 50), ("plain", 100)]]  # fmt: skip
    assert convergence_check({"results": rows}, "m")["passed"] is True
    unconverged = rows[:3] + [row(0.15, steps=100, pipeline="flip")]  # flip: 0.20 -> 0.15 with more steps
    assert convergence_check({"results": unconverged}, "m")["passed"] is False


def test_rows_of_older_records_without_the_new_fields_still_form_curves():
    old = [{key: value for key, value in row(mAP, eps=eps).items() if key not in ("pipeline", "attack_loss", "attack_distance", "schedule")}
           for mAP, eps in ((0.6, 2), (0.4, 4), (0.45, 8))]  # fmt: skip
    assert [len(curve) for curve in series_of(old, "eps")] == [3]
    assert monotone_check({"results": old}, "m")["passed"] is False
