"""Named attack plans for `metricattack run --plan NAME`: which settings a run sweeps."""

from __future__ import annotations

from dataclasses import dataclass

from metricattack.attacks.campaign import AttackSetting
from metricattack.errors import InputError


@dataclass(frozen=True)
class Plan:
    """A named list of settings with a one-line description for --help and the README."""

    name: str
    description: str
    settings: tuple[AttackSetting, ...]


DEFAULT_PLAN = Plan(
    "default",
    "the paper's sweep: gallery I-FGSM at eps 1-16, FGSM and MI-FGSM at eps 5, query-side I-FGSM, a targeted query attack",
    (
        *(AttackSetting("ifgsm", eps) for eps in (1, 2, 3, 4, 5, 8, 12, 16)),
        AttackSetting("fgsm", 5),
        AttackSetting("mifgsm", 5),
        AttackSetting("ifgsm", 5, side="query"),
        AttackSetting("ifgsm", 8, side="query", goal="targeted"),
    ),
)

PLANS: dict[str, Plan] = {plan.name: plan for plan in (DEFAULT_PLAN,)}


def get_plan(name: str) -> Plan:
    """The plan registered as ``name``; an unknown name lists the known ones."""
    if name not in PLANS:
        raise InputError(f"--plan: unknown plan {name!r} (expected one of {', '.join(PLANS)})")
    return PLANS[name]
