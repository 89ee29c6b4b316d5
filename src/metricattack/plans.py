"""Named attack plans for `metricattack run --plan NAME`: which settings a run sweeps."""

from __future__ import annotations

from dataclasses import dataclass

from metricattack.attacks.campaign import AttackSetting, NamedModel
from metricattack.errors import InputError


@dataclass(frozen=True)
class Plan:
    """A named list of settings with a one-line description for --help and the README; ``models``: zoo
    models that replace --model (each attacks alone and as part of an ensemble; all are evaluated)."""

    name: str
    description: str
    settings: tuple[AttackSetting, ...]
    models: tuple[str, ...] = ()


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

TRANSFER_PLAN = Plan(
    "transfer",
    "FGSM, I-FGSM and MI-FGSM (query side, eps 8) from each zoo model and from each leave-one-out ensemble, "
    "evaluated on every zoo model: the transfer matrix",
    tuple(AttackSetting(attack, 8, side="query") for attack in ("fgsm", "ifgsm", "mifgsm")),
    models=("compact", "compact_softmax", "mobilenet_v3_small", "resnet18"),
)

BLACKBOX_PLAN = Plan(
    "blackbox",
    "query-limited black-box attack (Square Attack on the returned ranking, query side, eps 8) at 100, 500 "
    "and 1000 queries per image, and a universal perturbation (eps 8) for comparison",
    (*(AttackSetting("blackbox", 8, side="query", steps=budget) for budget in (100, 500, 1000)),
     AttackSetting("uap", 8, side="query")),
)

PLANS: dict[str, Plan] = {plan.name: plan for plan in (DEFAULT_PLAN, TRANSFER_PLAN, BLACKBOX_PLAN)}


def get_plan(name: str) -> Plan:
    """The plan registered as ``name``; an unknown name lists the known ones."""
    if name not in PLANS:
        raise InputError(f"--plan: unknown plan {name!r} (expected one of {', '.join(PLANS)})")
    return PLANS[name]


def source_groups(models: list[NamedModel]) -> list[list[NamedModel]]:
    """Each model alone, then (with three or more) for each model an ensemble of all the others: the
    attacker that has every model but the one it is evaluated on."""
    singles = [[named] for named in models]
    if len(models) < 3:
        return singles
    return singles + [[other for other in models if other is not named] for named in models]
