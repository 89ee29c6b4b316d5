"""The one registry of ``--attack``: every attack name with how its settings are checked and run.

Step rules (``attacks.steps``) are run image by image by ``step_attack``; the universal perturbation
and the rank-only black-box search work on a whole side; ``auto`` is an ensemble of attacks per image. Filled
here, explicitly. The sweep and the sanity checks run a setting with ``run_attack``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from metricattack.attacks.steps import STEP_RULES
from metricattack.errors import InputError
from metricattack.experiment.auto import AutoAttack
from metricattack.experiment.blackbox import BlackBoxAttack
from metricattack.experiment.step_attack import StepRuleAttack
from metricattack.experiment.universal import UniversalAttack

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.outcome import AttackOutcome
    from metricattack.experiment.setting import AttackSetting, NamedModel


class AttackKind(Protocol):
    """What ``--attack NAME`` does with a setting.

    ``stores_chunks``: whether ``run`` stores its work in the setting's ``folder``, chunk by chunk, so that an
    interrupted setting resumes from its last chunk and processes under torchrun share the chunks. The
    universal perturbation does not (it resumes by epoch from its own cache, keyed by everything it depends on,
    and every process learns it); nor does the black-box search (it starts over, and every process runs it).
    """

    white_box: bool  # whether it needs the gradients of its source models
    stores_chunks: bool

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options this attack does not take."""

    def run(self, context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
        """The adversarial images of the setting (chunks stored in ``folder`` when given and ``stores_chunks``)."""


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


def check_setting(setting: AttackSetting) -> AttackKind:
    """The setting's attack kind, after the setting's own checks and the kind's (one-line InputErrors)."""
    setting.validate()
    kind = attack_kind(setting.attack)
    kind.validate(setting)
    return kind


def run_attack(context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None = None) -> AttackOutcome:
    """Run one checked setting in ``context`` with the deployed source model(s); with ``folder`` (and a kind that
    ``stores_chunks``) each finished chunk is stored there and reused: an interrupted setting resumes."""
    return check_setting(setting).run(context, setting, sources, folder)
