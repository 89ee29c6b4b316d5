"""Options from a YAML file (``--config``), overridden by the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from metricattack.errors import InputError


def read_config(path: str | Path) -> dict:
    """Read a YAML mapping of option names (dashes or underscores) to values."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
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
    parser.set_defaults(**values)
    return parser.parse_args(argv)
