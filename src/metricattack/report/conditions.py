"""What a run's numbers were measured under (data set, query subset, seed, deployed pipeline), and where runs differ."""

from __future__ import annotations

from metricattack.data.subset import split_subset_name
from metricattack.experiment.plans import HEADLINES

CONDITIONS = ("data set", "subset", "seed", "pipeline", "headline attack")


def headline_of(record: dict) -> str | None:
    """The key of a run's main setting: as the run recorded it, else the first of the plans' headlines it holds."""
    if record.get("headline"):
        return record["headline"]
    keys = {row.get("key") for row in record.get("results", [])}
    return next((setting.key for setting in HEADLINES if setting.key in keys), None)


def run_conditions(record: dict) -> dict[str, str | None]:
    """A results record's data set (with its gallery size when known), query subset, seed, deployed pipeline and
    headline attack (None when it has no headline setting: nothing to compare)."""
    data = record.get("dataset", {})
    name, count = split_subset_name(str(data.get("name", "?")))
    gallery = f" ({data['num_gallery']} gallery images)" if data.get("num_gallery") is not None else ""
    headline = headline_of(record)
    return {
        "data set": name + gallery,
        "subset": "all query identities" if count is None else f"{count} query identities",
        "seed": str(record.get("seed", "?")),
        "pipeline": str((record.get("pipelines") or [{}])[0].get("name", "plain")),
        "headline attack": headline and headline.split("-")[0],  # None: the run has no headline setting
    }


def differing_conditions(records: list[dict]) -> list[str]:
    """The conditions, of CONDITIONS, under which not all the records were measured alike."""
    measured = [run_conditions(record) for record in records]
    return [name for name in CONDITIONS if len({conditions[name] for conditions in measured} - {None}) > 1]


def condition_cells(records: list[dict], differing: list[str]) -> list[str]:
    """Per record, its values of the ``differing`` conditions, e.g. 'subset 2 query identities; seed 1'."""
    cells = [run_conditions(record) for record in records]
    return ["; ".join(f"{name} {conditions[name]}" for name in differing if conditions[name] is not None) for conditions in cells]


def unlike_warning(labels: list[str], records: list[dict]) -> str | None:
    """One sentence naming what the runs differ in and each run's values; None when they were measured alike."""
    differing = differing_conditions(records)
    if not differing:
        return None
    values = "; ".join(f"{label}: {cells}" for label, cells in zip(labels, condition_cells(records, differing)))
    return (f"these runs differ in {', '.join(differing)}, so their numbers were not measured alike and do not "
            f"compare directly ({values})")  # fmt: skip
