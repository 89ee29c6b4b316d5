"""``metricattack report RUN_DIR``: rebuild a run's report.html from its results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from metricattack.errors import InputError
from metricattack.report.html import build_report

NAME = "report"
HELP = "rebuild a run's report.html from its results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("run_dir", help="a folder written by metricattack run")


def run(args: argparse.Namespace) -> int:
    """Rebuild the page; a record edited by hand is one line naming the file."""
    try:
        print(f"report: {build_report(Path(args.run_dir))}")
    except InputError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:  # a record edited by hand
        raise InputError(f"{Path(args.run_dir) / 'results.json'}: not a results record metricattack wrote "
                         f"({exc.__class__.__name__}: {exc})") from None  # fmt: skip
    return 0
