"""What a run's numbers were measured under (data set, query subset, seed, deployed pipeline), and where runs differ."""

from __future__ import annotations

from metricattack.data.subset import split_subset_name

CONDITIONS = ("data set", "subset", "seed", "pipeline")


def run_conditions(record: dict) -> dict[str, str]:
    """A results record's data set (with its gallery size when known), query subset, seed and deployed pipeline."""
    data = record.get("dataset", {})
    name, count = split_subset_name(str(data.get("name", "?")))
    gallery = f" ({data['num_gallery']} gallery images)" if data.get("num_gallery") is not None else ""
    return {
        "data set": name + gallery,
        "subset": "all query identities" if count is None else f"{count} query identities",
        "seed": str(record.get("seed", "?")),
        "pipeline": str((record.get("pipelines") or [{}])[0].get("name", "plain")),
    }


def differing_conditions(records: list[dict]) -> list[str]:
    """The conditions, of CONDITIONS, under which not all the records were measured alike."""
    measured = [run_conditions(record) for record in records]
    return [name for name in CONDITIONS if len({conditions[name] for conditions in measured}) > 1]


def condition_cells(records: list[dict], differing: list[str]) -> list[str]:
    """Per record, its values of the ``differing`` conditions, e.g. 'subset 2 query identities; seed 1'."""
    return ["; ".join(f"{name} {run_conditions(record)[name]}" for name in differing) for record in records]


def unlike_warning(labels: list[str], records: list[dict]) -> str | None:
    """One sentence naming what the runs differ in and each run's values; None when they were measured alike."""
    differing = differing_conditions(records)
    if not differing:
        return None
    values = "; ".join(f"{label}: {cells}" for label, cells in zip(labels, condition_cells(records, differing)))
    return (f"these runs differ in {', '.join(differing)}, so their numbers were not measured alike and do not "
            f"compare directly ({values})")  # fmt: skip
