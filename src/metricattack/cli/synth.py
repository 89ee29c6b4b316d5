"""``metricattack synth``: render the synthetic data set (and a contact sheet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from metricattack.cli.checks import out_file, positive_int
from metricattack.cli.options import add_common, add_out
from metricattack.data.synthetic import SyntheticConfig, contact_sheet, generate

NAME = "synth"
HELP = "render a synthetic pedestrian data set (Market-1501 layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_common(parser)
    add_out(parser, "folder to write (must not exist or be empty)", required=True)
    defaults = SyntheticConfig()
    for name in ("train_ids", "test_ids", "cameras", "height", "width"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=positive_int, default=getattr(defaults, name))
    parser.add_argument("--contact-sheet", metavar="PNG", type=out_file, help="also write a contact sheet (8 ids x cameras)")


def run(args: argparse.Namespace) -> int:
    """Render the data set; print where it went."""
    config = SyntheticConfig(train_ids=args.train_ids, test_ids=args.test_ids, cameras=args.cameras,
                             height=args.height, width=args.width, seed=args.seed)
    root = generate(Path(args.out), config, progress=not args.no_progress)
    print(f"wrote {root}")
    if args.contact_sheet:
        print(f"wrote {contact_sheet(root, out=Path(args.contact_sheet), cameras=args.cameras)}")
    return 0
