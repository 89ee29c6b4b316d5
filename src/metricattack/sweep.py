"""The robustness sweep behind `metricattack run` and `metricattack attack`: settings in, result files out."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from metricattack import __version__
from metricattack.attacks.campaign import AttackSetting, Campaign, NamedModel, save_adversarial_images
from metricattack.errors import InputError
from metricattack.plans import Job
from metricattack.report.examples import write_examples
from metricattack.report.results import read_results, write_results
from metricattack.robustness import embedding_shift

def settings_from_config(entries: list) -> list[AttackSetting | Job]:
    """Settings from a YAML list of mappings (keys as AttackSetting fields, plus a Job's ``source`` and ``series``), checked."""
    job_keys = {"source", "series"}
    known = {f.name for f in fields(AttackSetting)} | job_keys
    settings = []
    if not isinstance(entries, list) or not entries:
        raise InputError("settings: expected a non-empty list of attack settings")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) - known:
            raise InputError(f"settings[{number}]: expected a mapping with keys among {sorted(known)}, got {entry!r}")
        setting = AttackSetting(**{k: v for k, v in entry.items() if k not in job_keys})
        setting.validate()
        settings.append(Job(setting, **{k: v for k, v in entry.items() if k in job_keys}) if job_keys & set(entry) else setting)
    return settings


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse an output path that is a file, or a non-empty folder unless resuming (files create it later)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder to write the run into)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not resume:
        raise InputError(f"--out {out_dir}: folder is not empty (pass --resume to continue that run, or choose another --out)")


def base_record(campaign: Campaign, command: str) -> dict:
    """The run's description and clean metrics, before any attack result (the results.json schema)."""
    return {
        "metricattack_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "seed": campaign.seed,
        "device": str(campaign.device),
        "quantize": campaign.quantize_images,
        "average_precision": campaign.average_precision,
        "dataset": {
            "name": campaign.data.name,
            "root": str(campaign.data.root),
            "num_query": len(campaign.query.samples),
            "num_gallery": len(campaign.gallery.samples),
            "num_query_ids": len(set(campaign.query.pids.tolist())),
        },
        "models": {
            "sources": [named.name for named in campaign.sources],
            "targets": {named.name: named.model.spec.to_dict() for named in campaign.targets},
        },
        "clean": {named.name: campaign.clean_metrics(named).as_dict() for named in campaign.targets},
        "results": [],
        "examples": {},
    }


def run_sweep(
    campaign: Campaign,
    settings: list[AttackSetting | Job],
    out_dir: str | Path,
    command: str,
    resume: bool = False,
    save_images: str | Path | None = None,
    examples: int = 3,
    models: dict[str, NamedModel] | None = None,
    extra: dict | None = None,
) -> dict:
    """Clean evaluation, then each setting; the record is rewritten after every setting so a run can resume.

    A Job's ``source`` is looked up in ``models`` (reference -> loaded model); ``extra`` entries are added
    to the record's top level.
    """
    jobs = [s if isinstance(s, Job) else Job(s) for s in settings]
    for job in jobs:
        job.setting.validate()
        if job.source is not None and job.source not in (models or {}):
            raise InputError(f"settings: source model {job.source!r} was not loaded")
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume)
    previous_record = {"results": [], "examples": {}}
    if resume and (out_dir / "results.json").is_file():
        previous_record = read_results(out_dir)
    done = previous_record["results"]
    record = {**base_record(campaign, command), **(extra or {})}
    if previous_record.get("dataset", record["dataset"]) != record["dataset"]:
        raise InputError(f"--resume: {out_dir} was run on other data ({previous_record['dataset'].get('num_query')} queries); "
                         "use the same data set and --subset, or another --out")
    finished = {(row["key"], row["target"]) for row in done}
    for job in tqdm(jobs, desc="settings", disable=not campaign.progress):
        previous = [row for row in done if row["key"] == job.key]
        if previous and all((job.key, named.name) in finished for named in campaign.targets):
            record["results"] += previous
            if job.key in previous_record.get("examples", {}):
                record["examples"][job.key] = previous_record["examples"][job.key]
            continue
        outcome, rows = campaign.run(job.setting, None if job.source is None else [models[job.source]])
        series = {} if job.series is None else {"series": job.series}
        shift = {named.name: embedding_shift(campaign, outcome, named) for named in campaign.targets}
        record["results"] += [{"key": job.key, **row, **series, "embedding_shift": shift[row["target"]]} for row in rows]
        if examples and job.source is None:  # examples are filed under the setting's key, which transfer shares
            record["examples"][job.key] = write_examples(campaign, outcome, out_dir, examples)
        if save_images is not None:
            save_adversarial_images(campaign, outcome, Path(save_images) / job.key)
        write_results(out_dir, record)
    write_results(out_dir, record)
    return record
