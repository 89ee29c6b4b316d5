"""Options from a YAML file (``--config``), overridden by the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from metricattack.atomic import read_document
from metricattack.errors import InputError
from metricattack.options import config_values


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
