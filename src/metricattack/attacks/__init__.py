"""Adversarial metric attacks, knowing nothing of data sets or runs: metric losses (what is optimised),
step rules (how; APGD among them), ``MetricAttack`` (the two over a model, on any variable through a
differentiable map to model inputs, ``maps``), the universal perturbation and the rank-only black-box search."""

from metricattack.attacks.apgd import APGD
from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.blackbox import RankingOracle, SquareRankAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.maps import BoxCrops, InputMap
from metricattack.attacks.margin import RankingMarginLoss
from metricattack.attacks.steps import (
    FGSM,
    IFGSM,
    MIFGSM,
    NORMS,
    PGD,
    STEP_RULES,
    StepRule,
    build_step_rule,
    default_iterations,
    pixels_to_fraction,
)
from metricattack.attacks.universal import UniversalPerturbation

__all__ = [
    "APGD",
    "BoxCrops",
    "InputMap",
    "FGSM",
    "IFGSM",
    "MIFGSM",
    "NORMS",
    "PGD",
    "STEP_RULES",
    "RankingOracle",
    "SquareRankAttack",
    "MetricAttack",
    "NonTargetedMetricLoss",
    "RankingMarginLoss",
    "StepRule",
    "TargetedMetricLoss",
    "UniversalPerturbation",
    "build_step_rule",
    "default_iterations",
    "pixels_to_fraction",
]
