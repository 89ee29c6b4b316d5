"""One robustness number per model: how much of its clean mAP survives the worst white-box attack, on average.

    score = mean over the measured (norm, eps, side) cells of  min over attacks (attacked mAP) / clean mAP

Cells are the non-targeted white-box settings of the run (the model attacks itself with its gradients, under
the deployed pipeline; the rank-only black-box search is not white-box); the minimum is over every attack measured in a cell (I-FGSM, auto, a longer auto...), so adding
an attack can only lower the score. 1 means no attack hurt the ranking, 0 that every cell was destroyed.
It is RobRank's empirical robustness score (ERS, Zhou et al., ECCV 2022) in spirit, a mean of normalised
worst-case metrics, reduced to the one metric re-ID reports. Scores are comparable between runs of the
same plan on the same data: the cells are recorded beside the score.
"""

from __future__ import annotations

from metricattack.experiment.registry import ATTACKS

def white_box(attack: str) -> bool:
    """Whether an attack follows its source's gradients (an attack name unknown here, from another version: yes)."""
    return attack not in ATTACKS or ATTACKS[attack].white_box


def robustness_score(record: dict, model: str) -> dict | None:
    """{"score", "clean_mAP", "cells": [[norm, eps, side], ...]} of ``model`` in a results record, or None without cells."""
    clean = record["clean"].get(model, {}).get("mAP")
    deployed = next(iter(record.get("clean_by_pipeline") or {}), None)
    worst: dict[tuple[str, float, str], float] = {}
    for row in record["results"]:
        if (row.get("source"), row.get("target"), row.get("goal")) != (model, model, "untargeted") or not white_box(row.get("attack")):
            continue
        if deployed is not None and row.get("pipeline", deployed) != deployed:
            continue
        cell = (row.get("norm", "linf"), row["eps"], row["side"])
        worst[cell] = min(worst.get(cell, float("inf")), row["mAP"])
    if not worst or not clean:
        return None
    score = sum(value / clean for value in worst.values()) / len(worst)
    return {"score": score, "clean_mAP": clean, "cells": [list(cell) for cell in sorted(worst)]}


def robustness_scores(record: dict) -> dict[str, dict]:
    """The score of every model that attacked itself in the record."""
    models = {row["target"] for row in record["results"] if row.get("source") == row.get("target")}
    scores = {model: robustness_score(record, model) for model in sorted(models)}
    return {model: score for model, score in scores.items() if score is not None}


def score_lines(record: dict) -> str:
    """The scores as printed under the results table, a line per model (empty without scores)."""
    return "".join(f"robustness score of {model}: {score['score']:.3f} (worst mAP / clean mAP {100 * score['clean_mAP']:.1f}, "
                   f"averaged over {len(score['cells'])} eps/side cells)\n" for model, score in record.get("robustness", {}).items())
