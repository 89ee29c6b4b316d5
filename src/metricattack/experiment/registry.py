"""The one registry of ``--attack``: every attack name with how its settings are checked and run.

Step rules (``attacks.steps``) are run image by image by ``step_attack``; the universal perturbation
and the rank-only black-box search work on a whole campaign; ``auto`` is an ensemble of attacks per image. Filled here, explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from metricattack.attacks.steps import STEP_RULES
from metricattack.errors import InputError
from metricattack.experiment.auto import AutoAttack
from metricattack.experiment.blackbox import BlackBoxAttack
from metricattack.experiment.step_attack import attack_with_step_rule
from metricattack.experiment.universal import UniversalAttack

if TYPE_CHECKING:
    from metricattack.experiment.campaign import Campaign
    from metricattack.experiment.outcome import AttackOutcome
    from metricattack.experiment.setting import AttackSetting, NamedModel


class AttackKind(Protocol):
    """What ``--attack NAME`` does with a setting."""

    white_box: bool  # whether it needs the gradients of its source models

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options this attack does not take."""

    def run(self, campaign: Campaign, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
        """The adversarial images of the setting (chunks stored in ``folder`` when it is given)."""


class StepRuleAttack:
    """A per-image gradient attack: the setting's step rule, run chunk by chunk over the attacked side(s)."""

    white_box = True

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError when the step rule does not take the setting's options."""
        setting.step_rule()

    def run(self, campaign: Campaign, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
        """The adversarial images, stored chunk by chunk (in ``folder`` when given)."""
        return attack_with_step_rule(campaign, setting, sources, folder)


ATTACKS: dict[str, AttackKind] = {
    **{name: StepRuleAttack() for name in STEP_RULES},
    "auto": AutoAttack(),
    "uap": UniversalAttack(),
    "blackbox": BlackBoxAttack(),
}


def attack_kind(name: str) -> AttackKind:
    """The attack registered as ``name``, or a one-line InputError listing the known ones."""
    if name not in ATTACKS:
        raise InputError(f"--attack: unknown attack {name!r} (expected one of {', '.join(ATTACKS)})")
    return ATTACKS[name]
