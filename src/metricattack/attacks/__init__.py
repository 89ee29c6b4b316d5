"""Adversarial metric attacks: metric losses (what is optimised), step rules (how), campaigns (where)."""

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.blackbox import RankingOracle, SquareRankAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import (
    ATTACKS,
    FGSM,
    IFGSM,
    MIFGSM,
    NORMS,
    PGD,
    StepRule,
    build_step_rule,
    default_iterations,
    pixels_to_fraction,
)
from metricattack.attacks.universal import UniversalPerturbation

__all__ = [
    "ATTACKS",
    "FGSM",
    "IFGSM",
    "MIFGSM",
    "NORMS",
    "PGD",
    "RankingOracle",
    "SquareRankAttack",
    "MetricAttack",
    "NonTargetedMetricLoss",
    "StepRule",
    "TargetedMetricLoss",
    "UniversalPerturbation",
    "build_step_rule",
    "default_iterations",
    "pixels_to_fraction",
]
