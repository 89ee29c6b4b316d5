"""Named attack plans for `metricattack run --plan NAME`: which settings a run sweeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from metricattack.experiment.auto import AUTO_STEPS
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.errors import InputError


@dataclass(frozen=True)
class Job:
    """One entry of a plan: a setting, the model that makes its images, and the curve its rows belong to.

    ``source`` is a model reference (``default``, a checkpoint path, ``ARCH:PATH``) for a transfer
    attack, None for white-box (the model under test); ``series`` names a curve of its own (e.g.
    ``convergence``) so its rows are not mixed into the mAP-vs-eps curves.
    """

    setting: AttackSetting
    source: str | None = None
    series: str | None = None

    @property
    def key(self) -> str:
        """The setting's key, plus the source's name (a checkpoint's file stem) for a transfer attack."""
        return self.setting.key + (f"-from-{Path(self.source).stem}" if self.source is not None else "")


@dataclass(frozen=True)
class Plan:
    """A named list of settings with a one-line description for --help and the README.

    ``sanity_checks``: the run also performs the checks of ``metricattack.robustness``. ``models``: zoo
    models that replace --model (each attacks alone and as part of an ensemble; all are evaluated). ``headline``:
    the setting reported as the plan's main number (compare, sanity checks).
    """

    name: str
    description: str
    settings: tuple[AttackSetting | Job, ...]
    sanity_checks: bool = False
    models: tuple[str, ...] = ()
    headline: AttackSetting | None = None  # the setting whose mAP is the plan's main number


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



def robust_pgd(eps: float, side: str = "gallery", goal: str = "untargeted", steps: int = 50) -> AttackSetting:
    """The PGD plan's attack: ``steps`` steps of eps/4 from 5 random starts, the best iterate per image kept."""
    return AttackSetting("pgd", eps, side, goal, steps=steps, step_size=eps / 4, restarts=5)


def robust_auto(eps: float, side: str = "gallery", steps: int | None = None) -> AttackSetting:
    """The robust plan's attack: the ``auto`` ensemble (APGD on two objectives, targeted APGD, a rank-only search)."""
    return AttackSetting("auto", eps, side, steps=steps)


ROBUST_EPS = (2, 4, 8, 16)
HEADLINE = robust_auto(8)  # the robust plan's main number: white-box gallery auto at eps 8
PGD_HEADLINE = robust_pgd(8)  # the PGD plan's (and, before auto, the robust plan's): gallery PGD-50x5 at eps 8
PAPER_SETTING = AttackSetting("ifgsm", 5)  # Bai et al.'s setting: gallery I-FGSM at eps 5
TRANSFER_SOURCE = "default"  # the undefended model

ROBUST_PLAN = Plan(
    "robust",
    "evaluation of a defense: the auto ensemble at eps 2-16 on gallery, query and both; targeted APGD; the paper's "
    "I-FGSM; transfer from the bundled (undefended) model; auto with twice the budget at eps 8; sanity checks",
    (
        *(robust_auto(eps, side) for side in ("gallery", "query", "both") for eps in ROBUST_EPS),
        AttackSetting("apgd", 8, "query", "targeted"),
        *(AttackSetting("ifgsm", eps) for eps in (2, 4, 5, 8, 16)),
        *(Job(robust_auto(eps), source=TRANSFER_SOURCE) for eps in (4, 8, 16)),
        Job(robust_auto(8, steps=2 * AUTO_STEPS), series="convergence"),
    ),
    sanity_checks=True,
    headline=HEADLINE,
)

ROBUST_PGD_PLAN = Plan(
    "robust-pgd",
    "the robust plan before auto, for comparison: PGD-50 (step eps/4, 5 restarts, best iterate kept) at eps 2-16 on "
    "gallery, query and both; targeted; the paper's I-FGSM; transfer from the bundled model; 10/100 steps at eps 8; sanity checks",
    (
        *(robust_pgd(eps, side) for side in ("gallery", "query", "both") for eps in ROBUST_EPS),
        robust_pgd(8, "query", "targeted"),
        *(AttackSetting("ifgsm", eps) for eps in (2, 4, 5, 8, 16)),
        *(Job(robust_pgd(eps), source=TRANSFER_SOURCE) for eps in (4, 8, 16)),
        *(Job(robust_pgd(8, steps=steps), series="convergence") for steps in (10, 100)),
    ),
    sanity_checks=True,
    headline=PGD_HEADLINE,
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

PLANS: dict[str, Plan] = {plan.name: plan for plan in (DEFAULT_PLAN, ROBUST_PLAN, ROBUST_PGD_PLAN, TRANSFER_PLAN, BLACKBOX_PLAN)}
HEADLINES = (HEADLINE, PGD_HEADLINE)  # what compare looks for in a run that does not name its headline


def get_plan(name: str) -> Plan:
    """The plan registered as ``name``; an unknown name lists the known ones."""
    if name not in PLANS:
        raise InputError(f"--plan: unknown plan {name!r} (expected one of {', '.join(PLANS)})")
    return PLANS[name]


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    """Whether two models hold the same parameters and buffers (the same architecture, equal tensors)."""
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def resolve_sources(
    settings: list[AttackSetting | Job], victim: NamedModel, load: Callable[[str], NamedModel]
) -> tuple[list[AttackSetting | Job], dict[str, NamedModel], list[str]]:
    """Load each transfer source once (``load`` maps a reference to a model); drop the jobs whose source
    is the model under test itself (transfer would repeat white-box). Returns (settings, models, dropped keys)."""
    models: dict[str, NamedModel] = {}
    kept, dropped = [], []
    for item in settings:
        source = item.source if isinstance(item, Job) else None
        if source is not None and source not in models:
            loaded = load(source)
            name = loaded.name if loaded.name != victim.name else f"{loaded.name}#source"
            models[source] = NamedModel(name, loaded.model)
        if source is not None and same_weights(models[source].model, victim.model):
            dropped.append(item.key)
        else:
            kept.append(item)
    return kept, {ref: named for ref, named in models.items() if any(isinstance(i, Job) and i.source == ref for i in kept)}, dropped


def source_groups(models: list[NamedModel]) -> list[list[NamedModel]]:
    """Each model alone, then (with three or more) for each model an ensemble of all the others: the
    attacker that has every model but the one it is evaluated on."""
    singles = [[named] for named in models]
    if len(models) < 3:
        return singles
    return singles + [[other for other in models if other is not named] for named in models]
