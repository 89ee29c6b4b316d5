"""The result files of a run: results.json (the record), results.csv and results.md (tables)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from metricattack.atomic import atomic_write_text, read_document
from metricattack.errors import InputError

RESULT_COLUMNS = (
    "attack", "norm", "eps", "steps", "step_size", "side", "goal", "target_pid", "source", "target",
    "mAP", "rank1", "rank5", "rank10", "mINP", "target_success_rank1", "target_success_rank5",
    "num_attacked", "seconds",
    "attack_distance", "schedule", "gradient_passes", "target_success_rank10", "target_rank_before", "target_rank_after",
)  # fmt: skip
PERCENT_COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP", "target_success_rank1", "target_success_rank5",
                   "target_success_rank10")  # fmt: skip


def read_results(run_dir: str | Path) -> dict:
    """Load a run's results.json with a one-line error when it is missing or malformed."""
    path = Path(run_dir) / "results.json"
    record = read_document(path, json.loads, (json.JSONDecodeError,), str(path), "a run directory written by metricattack run")
    if not isinstance(record, dict) or "results" not in record or "clean" not in record:
        raise InputError(f"{path}: expected a results record with 'clean' and 'results' entries")
    return record


def table_rows(record: dict) -> list[dict]:
    """Clean rows (one per model) followed by the attacked rows, with every column present."""
    rows = [
        {"attack": "clean", "source": "-", "target": name, **metrics} for name, metrics in record["clean"].items()
    ]
    rows += record["results"]
    return [{column: row.get(column) for column in RESULT_COLUMNS} for row in rows]


def format_cell(column: str, value) -> str:
    """Percentages with one decimal, floats short, missing values as '-'."""
    if value is None:
        return "-"
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_table(record: dict) -> str:
    """The results as a Markdown table (metrics in percent)."""
    rows = table_rows(record)
    header = "| " + " | ".join(RESULT_COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in RESULT_COLUMNS) + "|"
    lines = ["| " + " | ".join(format_cell(c, row[c]) for c in RESULT_COLUMNS) + " |" for row in rows]
    return "\n".join([header, rule, *lines]) + "\n"


def text_table(record: dict) -> str:
    """A compact fixed-width table for the terminal."""
    columns = ("attack", "eps", "side", "goal", "target", "mAP", "rank1", "rank5", "mINP", "target_success_rank1", "seconds")
    titles = {"target_success_rank1": "tgt@1", "target": "model"}
    cells = [[titles.get(c, c) for c in columns]]
    cells += [[format_cell(c, row[c]) for c in columns] for row in table_rows(record)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in cells) + "\n"


def csv_text(record: dict) -> str:
    """The results as CSV (metrics as fractions)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(record))
    return buffer.getvalue()


def write_results(run_dir: str | Path, record: dict) -> None:
    """Write results.json, results.csv and results.md atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "results.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(run_dir / "results.csv", csv_text(record))
    title = f"# metricattack results: {record['dataset']['name']}, seed {record['seed']}\n\n"
    atomic_write_text(run_dir / "results.md", title + markdown_table(record))


def transfer_matrix(record: dict, metric: str = "mAP") -> str:
    """Rows: source model(s) that made the images; columns: model evaluated; cells: metric in percent."""
    sources = list(dict.fromkeys(row["source"] for row in record["results"]))
    targets = list(dict.fromkeys(row["target"] for row in record["results"]))
    value = {(row["source"], row["target"]): row[metric] for row in record["results"]}
    width = max(len(name) for name in sources + targets + ["source \\ target"])
    lines = [f"{metric} (%) under attack, source \\ target".ljust(width)]
    lines.append(" " * width + "  " + "  ".join(t.rjust(width) for t in targets))
    lines.append(" " * width + "  " + "  ".join(format_cell(metric, record["clean"].get(t, {}).get(metric)).rjust(width) for t in targets) + "  (clean)")
    for source in sources:
        cells = [format_cell(metric, value.get((source, t))).rjust(width) for t in targets]
        lines.append(source.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines) + "\n"
