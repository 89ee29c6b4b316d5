"""Append a benchmark's section to benchmarks/RESULTS.md (created with its title if missing)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def append_section(lines: list[str]) -> None:
    """Add the lines to RESULTS.md and print them."""
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmarks\n", encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
