"""``metricattack zoo``: the model zoo, trained on first use and cached; lists clean metrics."""

from __future__ import annotations

import argparse

from metricattack.cli.options import add_common
from metricattack.cli.train import train_command
from metricattack.cli.wiring import ZOO_PREFIX, choose_device_once, load_reference
from metricattack.models.checkpoints import read_metadata
from metricattack.models.zoo import zoo_available, zoo_checkpoint, zoo_entry, zoo_names

NAME = "zoo"
HELP = "the model zoo: train missing models (cached), list clean metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_common(parser)
    parser.add_argument("names", nargs="*", help=f"zoo models (default all: {', '.join(zoo_names())})")
    parser.add_argument("--list", action="store_true", help="only list, train nothing")


def zoo_table(names: list[str] | None = None) -> str:
    """A Markdown table of zoo models: architecture, where the weights are, clean metrics and the train command."""
    lines = ["| model | architecture | weights | mAP | rank-1 | command |", "|---|---|---|---|---|---|"]
    for name in names or zoo_names():
        entry = zoo_entry(name)
        metrics = {}
        status = "not trained yet"
        if zoo_available(name):
            metrics = read_metadata(zoo_checkpoint(name)).get("clean_metrics", {})
            status = "shipped" if entry.shipped else f"cached ({zoo_checkpoint(name).parent})"
        cells = [f"{100 * metrics[key]:.1f}" if key in metrics else "-" for key in ("mAP", "rank1")]
        lines.append(f"| {name} | {entry.arch} | {status} | {cells[0]} | {cells[1]} | `{train_command(entry)}` |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Train the zoo models not on disk yet (unless --list), then list them."""
    names = args.names or zoo_names()
    device = None if args.list else choose_device_once(args)
    for name in names if not args.list else []:
        load_reference(f"{ZOO_PREFIX}{name}", device, args)
    print(zoo_table(names), end="")
    return 0
