#!/usr/bin/env python3
"""Check (or regenerate) the default run's table: docs/default-run.txt and its copy in README.md.

    python scripts/default_table.py                   # run `metricattack run --no-progress` (about 3 min on 2 cores), print the differences
    python scripts/default_table.py --write           # the same, then store the new table in docs/default-run.txt and README.md
    python scripts/default_table.py --output FILE     # take the table from a saved stdout of `metricattack run` instead of running it

Every cell is compared but `seconds` (the time of one run; it differs on every run). Exit code 0 when
the tables agree (or were written), 1 when they differ.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "docs" / "default-run.txt"
README = ROOT / "README.md"
IGNORED = ("seconds",)  # columns that differ from run to run
KEY = ("attack", "eps", "side", "goal", "model")  # the columns that name a row


def extract_table(text: str) -> str:
    """The fixed-width table `metricattack run` prints: its header line (starting with `attack`) and the rows after it."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split()[:2] == ["attack", "eps"]]
    if not starts:
        raise ValueError("no table found (expected a header line starting with 'attack  eps')")
    width = len(lines[starts[-1]].split())
    table = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        if len(line.split()) != width:
            break
        table.append(line)
    return "\n".join(table) + "\n"


def parse_table(table: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a fixed-width table, cells split on whitespace."""
    header, *rows = [line.split() for line in table.strip("\n").splitlines()]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {' '.join(row)!r} has {len(row)} cells, the header {len(header)}")
    return header, rows


def readme_table(readme: str) -> str:
    """The README's copy: the first fenced block of its Quick start that holds the table."""
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for block in section.split("```")[1::2]:
        if block.lstrip("\n").startswith("attack"):
            return block.lstrip("\n")
    raise ValueError("README.md: no table in the Quick start section")


def differences(old: str, new: str) -> list[str]:
    """One line per cell of ``new`` that differs from ``old`` (columns in IGNORED aside), and per missing or extra row."""
    old_header, old_rows = parse_table(old)
    new_header, new_rows = parse_table(new)
    if old_header != new_header:
        return [f"header: {' '.join(old_header)} -> {' '.join(new_header)}"]
    key_columns = [old_header.index(column) for column in KEY]
    old_by_key = {tuple(row[i] for i in key_columns): row for row in old_rows}
    new_by_key = {tuple(row[i] for i in key_columns): row for row in new_rows}
    found = [f"row {' '.join(key)}: missing" for key in old_by_key if key not in new_by_key]
    found += [f"row {' '.join(key)}: new" for key in new_by_key if key not in old_by_key]
    if list(old_by_key) != list(new_by_key) and not found:
        found.append("rows: in another order")
    for key, new_row in new_by_key.items():
        old_row = old_by_key.get(key)
        if old_row is None:
            continue
        for column, before, after in zip(old_header, old_row, new_row):
            if column not in IGNORED and before != after:
                found.append(f"{' '.join(key)}: {column} {before} -> {after}")
    return found


def fresh_output() -> str:
    """The stdout of `metricattack run --no-progress` into a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "metricattack", "run", "--no-progress", "--out", str(Path(folder) / "run")]
        print("running:", " ".join(command[1:]), file=sys.stderr)
        done = subprocess.run(command, capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            sys.exit(f"metricattack run failed (exit code {done.returncode}):\n{done.stderr}")
        return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, help="a saved stdout of `metricattack run` (default: run it now)")
    parser.add_argument("--write", action="store_true", help="store the new table in docs/default-run.txt and README.md")
    args = parser.parse_args(argv)
    new = extract_table(args.output.read_text() if args.output else fresh_output())
    stored = STORED.read_text() if STORED.is_file() else None
    found = differences(stored, new) if stored is not None else ["docs/default-run.txt: missing"]
    readme = README.read_text()
    found += [f"README.md: {line}" for line in differences(readme_table(readme), new)]
    for line in found:
        print(line)
    if args.write:
        STORED.write_text(new)
        README.write_text(readme.replace(readme_table(readme), new, 1))
        print(f"wrote {STORED.relative_to(ROOT)} and the table in {README.relative_to(ROOT)}")
        return 0
    print("the tables agree" if not found else f"{len(found)} differences (with --write: store the new table)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
