"""The result files of a run: results.json (the record), results.csv and results.md (tables)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from metricattack.system.atomic import atomic_write_text, read_document
from metricattack.errors import InputError

RESULT_COLUMNS = (
    "attack", "norm", "eps", "steps", "step_size", "side", "goal", "target_pid", "source", "target", "pipeline",
    "mAP", "rank1", "rank5", "rank10", "mINP", "target_success_rank1", "target_success_rank5",
    "num_attacked", "seconds",
    "clean_match_rank_mean", "match_rank_mean", "clean_match_rank_median", "match_rank_median",
    "top10_overlap", "rank1_changed", "perturbation_linf", "perturbation_l2", "psnr", "ssim",
    "attack_distance", "schedule", "attack_loss", "gradient_passes", "target_success_rank10", "target_rank_before", "target_rank_after",
)  # fmt: skip
PERCENT_COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP", "target_success_rank1", "target_success_rank5",
                   "target_success_rank10", "top10_overlap", "rank1_changed")  # fmt: skip
DECIMALS = {"clean_match_rank_mean": 1, "match_rank_mean": 1, "perturbation_linf": 2, "perturbation_l2": 1,
            "psnr": 1, "ssim": 3, "target_rank_before": 1, "target_rank_after": 1}  # fixed decimals of the tables (the files keep full precision)  # fmt: skip
DISTINGUISHING_COLUMNS = ("norm", "steps", "step_size", "restarts", "target_pid", "attack_distance", "schedule", "attack_loss", "series",
                          "source")  # what else tells two settings apart, in the order the printed table shows it  # fmt: skip


def read_kind_record(run_dir: str | Path, kind: str, command: str) -> dict | None:
    """The results.json of a ``metricattack COMMAND`` run folder whose record is of ``kind`` (``tracking``, ``wearing``),
    None when there is none; a one-line error when it is not such a record."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        return None
    record = read_document(path, json.loads, (json.JSONDecodeError,), str(path), f"a run folder written by metricattack {command}")
    if not isinstance(record, dict) or record.get("kind") != kind or not isinstance(record.get("results"), list):
        raise InputError(f"{path}: not a {kind} record (expected kind {kind!r} and 'results' rows)")
    return record


def write_result_files(run_dir: str | Path, record: dict, columns: tuple[str, ...], markdown: str) -> None:
    """results.json (the record), results.csv (its ``results`` rows in ``columns``) and results.md (``markdown``),
    each written atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "results.json", json.dumps(record, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(record["results"])
    atomic_write_text(run_dir / "results.csv", buffer.getvalue())
    atomic_write_text(run_dir / "results.md", markdown)


def read_results(run_dir: str | Path) -> dict:
    """Load a run's results.json with a one-line error when it is missing or malformed."""
    path = Path(run_dir) / "results.json"
    record = read_document(path, json.loads, (json.JSONDecodeError,), str(path), "a run directory written by metricattack run")
    if not isinstance(record, dict) or "results" not in record or "clean" not in record:
        raise InputError(f"{path}: expected a results record with 'clean' and 'results' entries")
    rows = record["results"] if isinstance(record["results"], list) else [None]
    clean = record["clean"] if isinstance(record["clean"], dict) else {None: None}
    if (
        not isinstance(record.get("dataset"), dict)
        or not isinstance(record.get("examples", {}), dict)
        or not all(isinstance(metrics, dict) for metrics in clean.values())
        or not all(isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("target"), str) for row in rows)
    ):
        raise InputError(
            f"{path}: not a results record metricattack wrote (expected 'dataset' and 'examples' mappings, 'clean' metrics per "
            "model, 'results' rows with 'key' and 'target')"
        )
    return record


def clean_rows(record: dict) -> list[dict]:
    """One clean row per pipeline and model (records without pipelines: one per model)."""
    by_pipeline = record.get("clean_by_pipeline") or {None: record["clean"]}
    return [
        {"attack": "clean", "source": "-", "target": name, **metrics}
        for clean in by_pipeline.values()
        for name, metrics in clean.items()
    ]


def clean_of(record: dict, target: str, pipeline: str | None) -> dict:
    """The clean metrics of a model under a pipeline (the deployed pipeline's when the record has no such entry)."""
    return record.get("clean_by_pipeline", {}).get(pipeline, {}).get(target) or record["clean"].get(target, {})


def several_pipelines(record: dict) -> bool:
    """Whether the record's rows were evaluated under more than one pipeline, or under one that is not plain."""
    return [pipeline.get("name") for pipeline in record.get("pipelines", [])] not in ([], ["plain"])


def table_rows(record: dict) -> list[dict]:
    """Clean rows (one per pipeline and model) followed by the attacked rows, with every column present."""
    rows = clean_rows(record) + record["results"]
    return [{column: row.get(column) for column in RESULT_COLUMNS} for row in rows]


def format_cell(column: str, value) -> str:
    """Percentages with one decimal, floats short, missing values as '-'."""
    if value is None:
        return "-"
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}"
    if column in DECIMALS:
        return f"{value:.{DECIMALS[column]}f}"
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


def distinguishing_columns(rows: list[dict], shown: tuple[str, ...], candidates: tuple[str, ...] = DISTINGUISHING_COLUMNS) -> list[str]:
    """The ``candidates``, in their order, needed to tell apart rows that agree on ``shown``."""
    chosen: list[str] = []
    for column in candidates:
        values: dict[tuple, set] = {}
        for row in rows:
            values.setdefault(tuple(row.get(c) for c in (*shown, *chosen)), set()).add(row.get(column))
        if any(len(found) > 1 for found in values.values()):
            chosen.append(column)
    return chosen


def text_table(record: dict) -> str:
    """A compact fixed-width table for the terminal; a setting's other fields (source, steps, ...) become columns
    only where rows would otherwise read the same."""
    pipeline = ("pipeline",) if several_pipelines(record) else ()
    shown = ("attack", "eps", "side", "goal", "target", *pipeline)
    extra = distinguishing_columns(record["results"], shown)
    columns = ("attack", "eps", "side", "goal", *extra, "target", *pipeline,
               "mAP", "rank1", "rank5", "mINP", "target_success_rank1", "match_rank_mean", "top10_overlap", "ssim", "seconds")
    titles = {"target_success_rank1": "tgt@1", "target": "model", "match_rank_mean": "match@", "top10_overlap": "top10",
              "step_size": "step", "target_pid": "tgt pid", "attack_distance": "distance", "attack_loss": "loss"}
    cells = [[titles.get(c, c) for c in columns]]
    cells += [[format_cell(c, row.get(c)) for c in columns] for row in clean_rows(record) + record["results"]]
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
    deployed = record.get("pipelines", [{}])[0].get("name")
    results = [row for row in record["results"] if row.get("pipeline") == deployed]  # one pipeline per cell
    sources = list(dict.fromkeys(row["source"] for row in results))
    targets = list(dict.fromkeys(row["target"] for row in results))
    value = {(row["source"], row["target"]): row[metric] for row in results}
    width = max(len(name) for name in sources + targets + ["source \\ target"])
    lines = [f"{metric} (%) under attack, source \\ target".ljust(width)]
    lines.append(" " * width + "  " + "  ".join(t.rjust(width) for t in targets))
    lines.append(" " * width + "  " + "  ".join(format_cell(metric, record["clean"].get(t, {}).get(metric)).rjust(width) for t in targets) + "  (clean)")
    for source in sources:
        cells = [format_cell(metric, value.get((source, t))).rjust(width) for t in targets]
        lines.append(source.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines) + "\n"
