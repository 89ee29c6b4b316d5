"""The result files of a wearing run: results.json (the record: settings, one row per wearer, the summary),
results.csv and results.md (a row per wearer), and reading a record back to resume it."""

from __future__ import annotations

from pathlib import Path

from metricattack.experiment.results import write_result_files

PRINTS = ("clean", "pattern", "random")  # what the wearer wears in a scored set of renders
COLUMNS = ("pid", "goal", "target", "rank1_clean", "rank1_pattern", "rank1_random", "mAP_clean", "mAP_pattern",
           "mAP_random", "match_rank_clean", "match_rank_pattern", "match_rank_random", "target_rank5_clean",
           "target_rank5_pattern", "target_rank5_random", "seen_rank1_clean", "seen_rank1_pattern",
           "transfer_rank1_clean", "transfer_rank1_pattern", "transfer_rank1_random", "tv", "nps", "seconds")  # fmt: skip
NOT_FRACTIONS = ("pid", "target", "match_rank_clean", "match_rank_pattern", "match_rank_random", "tv", "nps", "seconds")
PAIR_SUCCESS = 0.5  # an impersonation pair succeeds when at least this share of its queries has the target in the top 5


def flatten(scores: dict[str, dict[str, float | None]], prefix: str) -> dict[str, float | None]:
    """{print: {measure: value}} as {prefix + measure + "_" + print: value}."""
    return {f"{prefix}{measure}_{name}": value for name, values in scores.items() for measure, value in values.items()}


def mean(values: list[float]) -> float | None:
    """The mean, None for no values."""
    return sum(values) / len(values) if values else None


def summarize(rows: list[dict]) -> dict:
    """Means over wearers, as fractions: rank-1 drops (clean minus printed) under the pattern and the random
    pattern, on held-out and seen cameras and on the transfer model; for impersonation, the success rates."""
    summary: dict = {"wearers": len(rows)}
    for prefix in ("", "seen_", "transfer_"):
        for name, worn in (("rank1_drop", "pattern"), ("random_drop", "random")):
            drops = [row[f"{prefix}rank1_clean"] - row[f"{prefix}rank1_{worn}"] for row in rows
                     if row.get(f"{prefix}rank1_{worn}") is not None]  # fmt: skip
            summary[prefix + name] = mean(drops)
    posing = [row for row in rows if row.get("target_rank5_pattern") is not None]
    if posing:
        for worn in PRINTS:
            summary[f"target_rank1_{worn}"] = mean([row[f"target_rank1_{worn}"] for row in posing])
            summary[f"target_rank5_{worn}"] = mean([row[f"target_rank5_{worn}"] for row in posing])
        summary["pairs_rank5"] = mean([float(row["target_rank5_pattern"] >= PAIR_SUCCESS) for row in posing])
        summary["random_pairs_rank5"] = mean([float(row["target_rank5_random"] >= PAIR_SUCCESS) for row in posing])
    return summary


def cell(column: str, value) -> str:
    """A value as the tables show it (fractions in %)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if column in ("tv", "nps") else f"{value:.1f}" if column in NOT_FRACTIONS else f"{100 * value:.1f}"
    return str(value)


def shown_columns(rows: list[dict]) -> list[str]:
    """The columns some row has a value for."""
    return [c for c in COLUMNS if any(row.get(c) is not None for row in rows)]


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (fractions in %)."""
    columns = shown_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_lines(summary: dict) -> str:
    """The summary as text lines (fractions in points of %)."""
    return "".join(f"{key}: {cell(key, value)}\n" for key, value in summary.items() if value is not None)


def write_results(run_dir: Path, record: dict) -> None:
    """results.json, results.csv and results.md, each written atomically."""
    setting = record["setting"]
    header = (f"# Wearable pattern: {setting['goal']} on the {setting['area']}\n\nOptimised on cameras {setting['train_cameras']}, "
              f"scored on held-out cameras {setting['test_cameras']}; fractions in %.\n\n")
    summary = "\n## Summary\n\n" + "".join(f"- {line}\n" for line in summary_lines(record["summary"]).splitlines())
    write_result_files(run_dir, record, COLUMNS, header + markdown_table(record["results"]) + summary)
