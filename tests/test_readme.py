"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_is_two_commands_run_then_test():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("metricattack run") and "pip install ." in commands[0]
    assert commands[1].endswith("pytest") and "'.[test]'" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert quick_start_commands()[1] in ci_lines
    assert "rm -rf .venv" in ci_lines  # a fresh venv, as on a new machine


def test_readme_documents_every_command():
    from metricattack.cli.parser import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    _, subparsers = build_parser()
    for name in subparsers:
        assert f"metricattack {name}" in readme, name
