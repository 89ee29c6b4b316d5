"""``metricattack compare``: the models of several runs side by side (HTML page, Markdown and CSV tables)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from metricattack.cli.options import add_out
from metricattack.report.compare import comparison_warning, load_runs, write_models

NAME = "compare"
HELP = "compare the models of several runs (clean, robust, cost, sanity checks)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by metricattack run")
    add_out(parser, "folder for compare.html, compare.md, compare.csv (default runs/compare-<timestamp>)")


def run(args: argparse.Namespace) -> int:
    """Write the comparison; print where it went, and a warning when the runs were not measured alike."""
    out_dir = Path(args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    models = load_runs(args.run_dirs)
    print(f"comparison: {write_models(models, out_dir)} (and compare.md, compare.csv)")
    warning = comparison_warning(models)
    if warning:
        print(f"warning: {warning}")
    return 0
