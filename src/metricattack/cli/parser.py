"""The command-line parser: one subparser per subcommand module, each built from the shared option groups."""

from __future__ import annotations

import argparse

from metricattack import __version__
from metricattack.cli import attack, compare, evaluate, report, run, synth, track, train, wear, zoo
from metricattack.cli.checks import Parser

COMMANDS = (synth, evaluate, train, attack, run, track, wear, zoo, report, compare)  # in the order `--help` lists them


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each subcommand's parser (``--config`` re-parses with the latter)."""
    parser = Parser(prog="metricattack", description="Adversarial metric attacks on person re-identification.")
    parser.add_argument("--version", action="version", version=f"metricattack {__version__}")
    sub = parser.add_subparsers(dest="command_name", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for command in COMMANDS:
        subparser = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(subparser)
        subparser.set_defaults(func=command.run, resumes=getattr(command, "RESUMES", None))
        subparsers[command.NAME] = subparser
    return parser, subparsers
