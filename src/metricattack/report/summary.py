"""Robustness summaries of mAP-epsilon curves."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

CURVE_FIELDS = ("attack", "norm", "side", "goal", "source", "target")


@dataclass
class Curve:
    """One attack's metric against eps (sorted by eps), with the clean value at eps 0."""

    label: str
    eps: list[float]
    mAP: list[float]
    rank1: list[float]
    clean_mAP: float
    clean_rank1: float


def curves(record: dict) -> list[Curve]:
    """Group result rows by everything but eps; each group is a curve."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in record["results"]:
        groups[tuple(row.get(f) for f in CURVE_FIELDS)].append(row)
    found = []
    for key, rows in groups.items():
        rows = sorted(rows, key=lambda r: r["eps"])
        attack, norm, side, goal, source, target = key
        clean = record["clean"].get(target, {})
        label = f"{attack} {norm} {side} {goal}" + (f" ({source} -> {target})" if source != target else "")
        found.append(
            Curve(label, [r["eps"] for r in rows], [r["mAP"] for r in rows], [r["rank1"] for r in rows],
                  clean.get("mAP", float("nan")), clean.get("rank1", float("nan")))
        )  # fmt: skip
    return found


def relative_auc(curve: Curve) -> float:
    """Area under mAP(eps) from eps 0 (the clean mAP) to the largest eps, by trapezoids, divided by
    clean mAP x largest eps: 1 for a model the attack does not hurt, near 0 for one it breaks at once."""
    eps = [0.0, *curve.eps]
    values = [curve.clean_mAP, *curve.mAP]
    area = sum((eps[i + 1] - eps[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(eps) - 1))
    return area / (curve.clean_mAP * eps[-1])


def eps_at_half(curve: Curve) -> float | None:
    """The eps at which mAP first falls to half the clean mAP (linear between measured points), or None."""
    half = curve.clean_mAP / 2
    eps = [0.0, *curve.eps]
    values = [curve.clean_mAP, *curve.mAP]
    for i in range(len(eps) - 1):
        if values[i + 1] <= half:
            if values[i] == values[i + 1]:
                return eps[i + 1]
            return eps[i] + (values[i] - half) / (values[i] - values[i + 1]) * (eps[i + 1] - eps[i])
    return None
