"""YAML options: values become defaults, the command line wins, bad files are one-line errors."""

from __future__ import annotations

import pytest

from metricattack.cli import build_parser
from metricattack.config import apply_config
from metricattack.errors import InputError


def parse(argv):
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    return apply_config(subparsers[args.command_name], argv[1:], args)


def test_yaml_values_are_defaults_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("eps: 8\nside: query\nbatch-size: 16\n")
    args = parse(["attack", "--config", str(config), "--side", "gallery"])
    assert (args.eps, args.side, args.batch_size) == (8, "gallery", 16)


def test_bad_yaml_is_a_one_line_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("eps: [unclosed\n")
    with pytest.raises(InputError, match=r"--config .*c\.yaml: not valid") as info:
        parse(["attack", "--config", str(config)])
    assert "\n" not in str(info.value)
    config.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="expected a mapping"):
        parse(["attack", "--config", str(config)])
