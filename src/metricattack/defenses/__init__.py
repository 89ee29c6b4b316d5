"""Defenses: training objectives that use the attacks as their inner attack, and a registry of them."""

from __future__ import annotations

from dataclasses import fields

from metricattack.defenses.act import ACT
from metricattack.defenses.base import Defense
from metricattack.defenses.est import EST
from metricattack.defenses.hm import HM
from metricattack.defenses.offline import Offline
from metricattack.defenses.pgd_at import PGDAT
from metricattack.defenses.purifier import Purifier, with_purifier
from metricattack.defenses.ses import SES
from metricattack.errors import InputError

DEFENSES: dict[str, type[Defense]] = {d.name: d for d in (Offline, EST, SES, ACT, HM, PGDAT, Purifier)}
DEFENSE_OPTIONS = ("eps", "step_size", "steps", "random_start", "clean_weight", "beta", "margin", "ics_weight")


def _flags(names: list[str]) -> str:
    return ", ".join("--defense-" + name.replace("_", "-") for name in names)


def build_defense(name: str, **options) -> Defense:
    """The defense registered as ``name`` with its options (eps and step size in pixels out of 255)."""
    if name not in DEFENSES:
        raise InputError(f"--defense: unknown defense {name!r} (expected one of {', '.join(DEFENSES)})")
    accepted = [f.name for f in fields(DEFENSES[name])]
    extra = sorted(set(options) - set(accepted))
    if extra:
        raise InputError(f"--defense {name} does not take {_flags(extra)} (it takes {_flags(accepted)})")
    return DEFENSES[name](**options)


__all__ = ["ACT", "DEFENSES", "DEFENSE_OPTIONS", "EST", "HM", "PGDAT", "SES", "Defense", "Offline", "Purifier",
           "build_defense", "with_purifier"]
