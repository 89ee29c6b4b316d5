"""YAML options: values become defaults, the command line wins, bad files are one-line errors."""

from __future__ import annotations

import io
from contextlib import redirect_stderr

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metricattack.cli.parser import build_parser
from metricattack.cli.config import apply_config
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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.integers(-5, 5000).map(str), st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)))
def test_yaml_and_command_line_values_get_the_same_check(text, tmp_path):
    """--batch-size TEXT and `batch_size: 'TEXT'` are both accepted with the same value, or both refused."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"batch_size": text}))
    try:
        from_yaml = parse(["evaluate", "--config", str(config)]).batch_size
    except InputError:
        from_yaml = None
    try:
        with redirect_stderr(io.StringIO()):
            from_cli = parse(["evaluate", "--batch-size", text]).batch_size
    except SystemExit:
        from_cli = None
    assert from_yaml == from_cli
    if from_cli is not None:
        assert from_cli == int(text) >= 1
