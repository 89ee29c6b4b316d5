"""Options from a YAML file (``--config``), overridden by the command line; attack settings from its ``settings`` list."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import yaml

from metricattack.cli.checks import config_values
from metricattack.errors import InputError
from metricattack.experiment.plans import Job
from metricattack.experiment.registry import check_setting
from metricattack.experiment.setting import AttackSetting
from metricattack.system.atomic import read_document


def read_config(path: str | Path) -> dict:
    """Read a YAML mapping of option names (dashes or underscores) to values."""
    path = Path(path)
    data = read_document(path, yaml.safe_load, (yaml.YAMLError,), f"--config {path}", "a YAML file of options")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: expected a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def apply_config(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace) -> argparse.Namespace:
    """Re-parse ``argv`` with the YAML values of ``args.config`` as defaults; unknown keys are an error."""
    if getattr(args, "config", None) is None:
        return args
    values = read_config(args.config)
    known = {action.dest for action in parser._actions} - {"help", "config"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"--config {args.config}: unknown options {unknown} (expected some of {sorted(known)})")
    parser.set_defaults(**config_values(parser, values, f"--config {args.config}"))
    return parser.parse_args(argv)


def settings_from_config(entries: list, options: argparse.ArgumentParser | None = None) -> list[AttackSetting | Job]:
    """Settings from a YAML list of mappings (keys as AttackSetting fields, plus a Job's ``source`` and ``series``), checked.

    With ``options`` (the ``attack`` command's parser) each value goes through the same check as the
    command-line option of that name (``eps`` as ``--eps``).
    """
    job_keys = {"source", "series"}
    known = {f.name for f in fields(AttackSetting)} | job_keys
    settings = []
    if not isinstance(entries, list) or not entries:
        raise InputError("settings: expected a non-empty list of attack settings")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) - known:
            raise InputError(f"settings[{number}]: expected a mapping with keys among {sorted(known)}, got {entry!r}")
        setting_values = {k: v for k, v in entry.items() if k not in job_keys}
        if options is not None:
            setting_values = config_values(options, setting_values, f"settings[{number}]")
        setting = AttackSetting(**setting_values)
        try:
            check_setting(setting)
        except InputError as exc:
            raise InputError(f"settings[{number}]: {exc}") from None
        settings.append(Job(setting, **{k: v for k, v in entry.items() if k in job_keys}) if job_keys & set(entry) else setting)
    return settings
