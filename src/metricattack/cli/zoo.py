"""``metricattack zoo``: the model zoo, trained on first use and cached; lists clean metrics."""

from __future__ import annotations

import argparse

from metricattack.cli.options import add_common
from metricattack.experiment.inputs import model_from_reference
from metricattack.models.zoo import zoo_names, zoo_table

NAME = "zoo"
HELP = "the model zoo: train missing models (cached), list clean metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_common(parser)
    parser.add_argument("names", nargs="*", help=f"zoo models (default all: {', '.join(zoo_names())})")
    parser.add_argument("--list", action="store_true", help="only list, train nothing")


def run(args: argparse.Namespace) -> int:
    """Train the zoo models not on disk yet (unless --list), then list them."""
    names = args.names or zoo_names()
    for name in names if not args.list else []:
        model_from_reference(f"zoo:{name}", not args.no_progress)
    print(zoo_table(names), end="")
    return 0
