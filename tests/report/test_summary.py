"""Robustness summaries against hand-worked numbers."""

from __future__ import annotations

import pytest

from metricattack.report.summary import Curve, curves, eps_at_half, relative_auc


def row(eps: float, mAP: float, **fields) -> dict:
    """A result row of an I-FGSM L-inf gallery untargeted attack unless ``fields`` say otherwise."""
    base = {"attack": "ifgsm", "norm": "linf", "side": "gallery", "goal": "untargeted", "source": "default",
            "target": "default", "eps": eps, "mAP": mAP, "rank1": mAP + 0.1}  # fmt: skip
    return {**base, **fields}


def record(*rows: dict, clean_mAP: float = 0.8) -> dict:
    return {"clean": {"default": {"mAP": clean_mAP, "rank1": 0.9}}, "results": list(rows)}


def curve(eps: list[float], mAP: list[float], clean: float = 0.8) -> Curve:
    return Curve("c", eps, mAP, mAP, clean, 0.9)


def test_curves_group_everything_but_eps_and_sort_by_eps():
    found = curves(record(row(8, 0.1), row(2, 0.6), row(4, 0.45, side="query"), row(4, 0.3), row(5, 0.5, attack="fgsm")))
    assert [c.label for c in found] == [
        "ifgsm linf gallery untargeted", "ifgsm linf query untargeted", "fgsm linf gallery untargeted"
    ]  # fmt: skip
    assert found[0].eps == [2, 4, 8] and found[0].mAP == [0.6, 0.3, 0.1] and found[0].rank1 == pytest.approx([0.7, 0.4, 0.2])
    assert (found[0].clean_mAP, found[0].clean_rank1) == (0.8, 0.9)
    assert found[1].eps == [4] and found[2].eps == [5]


def test_curve_labels_name_the_models_when_there_are_several():
    rows = [row(4, 0.3), row(4, 0.5, target="other")]
    data = record(*rows)
    data["clean"]["other"] = {"mAP": 0.7, "rank1": 0.8}
    found = curves(data)
    assert [c.label for c in found] == [
        "ifgsm linf gallery untargeted (default -> default)", "ifgsm linf gallery untargeted (default -> other)"
    ]  # fmt: skip
    assert found[1].clean_mAP == 0.7


def test_relative_auc_by_hand():
    # eps 0, 2, 4, 8 with mAP 0.8 (clean), 0.6, 0.3, 0.1: trapezoids 1.4 + 0.9 + 0.8 = 3.1; / (0.8 x 8)
    assert relative_auc(curve([2, 4, 8], [0.6, 0.3, 0.1])) == pytest.approx(3.1 / 6.4)
    # one eps: 4 x (0.8 + 0.5) / 2 = 2.6; / (0.8 x 4)
    assert relative_auc(curve([4], [0.5])) == pytest.approx(0.8125)


def test_relative_auc_is_one_when_unharmed_and_none_when_undefined():
    assert relative_auc(curve([1, 3], [0.8, 0.8])) == pytest.approx(1.0)
    assert relative_auc(curve([1, 3], [0.0, 0.0], clean=0.0)) is None
    assert relative_auc(curve([0], [0.5])) is None


def test_eps_at_half_interpolates_between_measured_points():
    # half of 0.8 is 0.4, between (2, 0.6) and (4, 0.3): 2 + 2 x (0.6 - 0.4) / (0.6 - 0.3)
    assert eps_at_half(curve([2, 4, 8], [0.6, 0.3, 0.1])) == pytest.approx(2 + 4 / 3)
    # between the clean point (0, 0.8) and (4, 0.2): 4 x 0.4 / 0.6
    assert eps_at_half(curve([4], [0.2])) == pytest.approx(8 / 3)
    # exactly at a measured point
    assert eps_at_half(curve([2, 4], [0.4, 0.2])) == pytest.approx(2.0)


def test_eps_at_half_takes_the_first_crossing_and_none_if_never():
    assert eps_at_half(curve([1, 2, 3], [0.3, 0.7, 0.1])) == pytest.approx(0.8)  # 0.4 / 0.5 of the way to eps 1
    assert eps_at_half(curve([4], [0.5])) is None
    assert eps_at_half(curve([4], [0.0], clean=0.0)) is None
