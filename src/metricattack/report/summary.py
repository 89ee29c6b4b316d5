"""Robustness summaries of mAP-eps curves: the relative area under the curve and the eps at half mAP.

A curve is every result row that shares (attack, norm, side, goal, source, target, pipeline, series), sorted
by eps, with the clean mAP of the target model under that pipeline standing at eps 0; ``series`` (absent on
most rows) keeps e.g. the robust plan's convergence rows (other step counts) off the eps curves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from metricattack.experiment.results import clean_of, several_pipelines

CURVE_FIELDS = ("attack", "norm", "side", "goal", "source", "target", "pipeline", "series")
BUDGET_ATTACKS = ("blackbox",)  # rows whose ``steps`` is a query budget: curves against queries (report/threats.py)


@dataclass(frozen=True)
class Curve:
    """One attack's metrics against eps (ascending, in pixels out of 255), with the clean values at eps 0."""

    label: str
    eps: list[float]
    mAP: list[float]
    rank1: list[float]
    clean_mAP: float
    clean_rank1: float


def curves(record: dict) -> list[Curve]:
    """Group the record's result rows by everything but eps, in order of first appearance; each group is a curve.

    Labels name the models (``source -> target``) only when the record has more than one, and the pipeline
    only when it has several or one that is not plain.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in record["results"]:
        if row.get("attack") not in BUDGET_ATTACKS:
            groups[tuple(row.get(field) for field in CURVE_FIELDS)].append(row)
    models = {row.get("source") for row in record["results"]} | {row.get("target") for row in record["results"]}
    found = []
    for (attack, norm, side, goal, source, target, pipeline, series), rows in groups.items():
        rows = sorted(rows, key=lambda row: row["eps"])
        clean = clean_of(record, target, pipeline)
        label = f"{attack} {norm} {side} {goal}" + (f" [{series}]" if series else "")
        label += f" ({source} -> {target})" if len(models) > 1 else ""
        label += f" [{pipeline}]" if several_pipelines(record) else ""
        found.append(
            Curve(label, [r["eps"] for r in rows], [r["mAP"] for r in rows], [r["rank1"] for r in rows],
                  clean.get("mAP", float("nan")), clean.get("rank1", float("nan")))
        )  # fmt: skip
    return found


def _with_clean(curve: Curve) -> tuple[list[float], list[float]]:
    """The curve's eps and mAP with the clean point (0, clean mAP) in front."""
    return [0.0, *curve.eps], [curve.clean_mAP, *curve.mAP]


def relative_auc(curve: Curve) -> float | None:
    """Area under mAP(eps) relative to an unharmed model.

    With the clean mAP m_0 at eps_0 = 0 and the measured points (eps_i, m_i), i = 1..n (ascending):

        AUC_rel = sum_i (eps_i - eps_{i-1}) (m_{i-1} + m_i) / 2  /  (m_0 eps_n)

    1 means the attack did not lower mAP at any measured eps; near 0, it broke the model at once.
    None when undefined (clean mAP 0 or unknown, or a largest eps of 0).
    """
    eps, values = _with_clean(curve)
    if not curve.clean_mAP > 0 or eps[-1] <= 0:
        return None
    area = sum((eps[i] - eps[i - 1]) * (values[i - 1] + values[i]) / 2 for i in range(1, len(eps)))
    return area / (curve.clean_mAP * eps[-1])


def eps_at_half(curve: Curve) -> float | None:
    """The eps at which mAP first falls to half the clean mAP, interpolated linearly between measured points
    (from the clean point at eps 0); None if it never does, or if the clean mAP is 0 or unknown."""
    if not curve.clean_mAP > 0:
        return None
    half = curve.clean_mAP / 2
    eps, values = _with_clean(curve)
    for i in range(1, len(eps)):
        if values[i] <= half:  # values[i - 1] > half, so the denominator is positive
            return eps[i - 1] + (values[i - 1] - half) / (values[i - 1] - values[i]) * (eps[i] - eps[i - 1])
    return None
