"""The result files of a tracking run: results.json (the record), results.csv and results.md (a row per setting)."""

from __future__ import annotations

from pathlib import Path

from metricattack.experiment.results import write_result_files

COLUMNS = ("setting", "idf1", "idsw", "mota", "hota", "assa", "deta", "pairs", "switched", "switch_success",
           "frames_attacked", "boxes_attacked", "ssim", "gradient_passes", "seconds")  # fmt: skip
FRACTIONS = ("idf1", "mota", "hota", "assa", "deta", "switch_success")  # in [0,1] in the files, in % in the table
DECIMALS = {"ssim": 3, "seconds": 1}


def cell(column: str, value) -> str:
    """A value as the Markdown table shows it."""
    if value is None:
        return "-"
    if column in FRACTIONS:
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.{DECIMALS.get(column, 1)}f}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (fractions in %)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_table(rows: list[dict]) -> str:
    """The rows as the aligned text table printed at the end of a run (fractions in %)."""
    shown = [c for c in COLUMNS if any(row.get(c) is not None for row in rows)]
    cells = [[cell(c, row.get(c)) for c in shown] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(shown)]
    return "\n".join(" ".join(v.rjust(w) for v, w in zip(line, widths)) for line in [shown, *cells]) + "\n"


def write_results(run_dir: Path, record: dict) -> None:
    """results.json, results.csv and results.md, each written atomically."""
    against = record.get("against", "ground truth")
    header = f"# Tracking: {record.get('sequence', '')}\n\nMetrics against {against}; fractions in %.\n\n"
    write_result_files(run_dir, record, COLUMNS, header + markdown_table(record["results"]))
