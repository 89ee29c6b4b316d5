"""The robustness sweep behind `metricattack run` and `metricattack attack`: settings in, result files out."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from metricattack import __version__, distributed
from metricattack.attacks.campaign import AttackSetting, Campaign, NamedModel, assign_targets, save_adversarial_images
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import PLAIN_NAME
from metricattack.lock import LOCK_NAME, check_unlocked, folder_lock
from metricattack.options import config_values, folder_problem
from metricattack.plans import Job
from metricattack.report.examples import write_examples
from metricattack.report.results import read_results, write_results
from metricattack.robustness import embedding_shift


# what must match for --resume to continue a run: the rows of the record must come from the same experiment
IDENTITY_KEYS = ("seed", "quantize", "average_precision", "dataset", "models", "plan", "chunk_size")
CHUNKS_FOLDER = "chunks"  # out_dir/chunks/<setting>/<source>/: the finished chunks of the setting under way


def settings_from_config(entries: list, options: argparse.ArgumentParser | None = None) -> list[AttackSetting | Job]:
    """Settings from a YAML list of mappings (keys as AttackSetting fields, plus a Job's ``source`` and ``series``), checked.

    With ``options`` (the ``attack`` command's parser) each value goes through the same check as the
    command-line option of that name (``eps`` as ``--eps``).
    """
    job_keys = {"source", "series"}
    known = {f.name for f in fields(AttackSetting)} | job_keys
    settings = []
    if not isinstance(entries, list) or not entries:
        raise InputError("settings: expected a non-empty list of attack settings")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) - known:
            raise InputError(f"settings[{number}]: expected a mapping with keys among {sorted(known)}, got {entry!r}")
        setting_values = {k: v for k, v in entry.items() if k not in job_keys}
        if options is not None:
            setting_values = config_values(options, setting_values, f"settings[{number}]")
        setting = AttackSetting(**setting_values)
        try:
            setting.validate()
        except InputError as exc:
            raise InputError(f"settings[{number}]: {exc}") from None
        settings.append(Job(setting, **{k: v for k, v in entry.items() if k in job_keys}) if job_keys & set(entry) else setting)
    return settings


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse an output path that is a file, cannot be written, is being written by another run, or is a
    non-empty folder unless resuming (files create it later)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder to write the run into)")
    problem = folder_problem(out_dir)
    if problem:
        raise InputError(f"--out {out_dir}: {problem}")
    check_unlocked(out_dir)
    if out_dir.is_dir() and any(p.name != LOCK_NAME for p in out_dir.iterdir()) and not resume:
        raise InputError(f"--out {out_dir}: folder is not empty (pass --resume to continue that run, or choose another --out)")


def check_against_data(campaign: Campaign, settings: list[AttackSetting]) -> None:
    """Refuse, before any attack, a setting the data cannot serve (a --target-pid missing from a reference side)."""
    for setting in settings:
        setting.validate()
        if setting.target_pid is None:
            continue
        references = {"query": [campaign.gallery], "gallery": [campaign.query], "both": [campaign.gallery, campaign.query]}
        for reference in references[setting.side]:
            try:
                assign_targets(reference.pids[:0], reference.pids, None, fixed=setting.target_pid)
            except InputError as exc:
                raise InputError(f"setting {setting.key}: {exc} (nothing was attacked)") from None


def check_same_run(previous: dict, record: dict, path: Path) -> None:
    """Refuse to resume into a record made by another experiment (seed, data, models, options or plan differ)."""
    current = json.loads(json.dumps({key: record.get(key) for key in IDENTITY_KEYS}))  # as it would be stored
    for key in IDENTITY_KEYS:
        if key not in previous or previous[key] == current[key]:
            continue  # records written before a key existed are not held to it
        old, new = previous[key], current[key]
        if isinstance(old, dict) and isinstance(new, dict):
            key, old, new = next((f"{key}.{k}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
        raise InputError(
            f"--resume: {path} was made with {key} {json.dumps(old)}, this run has {json.dumps(new)} "
            "(resume with the same options, or choose another --out)"
        )


def base_record(campaign: Campaign, command: str) -> dict:
    """The run's description and clean metrics, before any attack result (the results.json schema)."""
    return {
        "metricattack_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "seed": campaign.seed,
        "device": str(campaign.device),
        "quantize": campaign.quantize_images,
        "chunk_size": campaign.chunk_size,
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
        "pipelines": [pipeline.as_dict() for pipeline in campaign.pipelines],
        "clean": {named.name: campaign.clean_result(named) for named in campaign.targets},
        "clean_by_pipeline": {
            pipeline.name: {named.name: campaign.clean_result(named, pipeline) for named in campaign.targets}
            for pipeline in campaign.pipelines
        },
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
    source_groups: list[list[NamedModel]] | None = None,
) -> dict:
    """Clean evaluation, then each setting; the record is rewritten after every setting so a run can resume.

    Every setting is checked against the data first; the folder is locked while the run writes into it.
    Each setting runs with each group of source models (default: the campaign's sources); a Job's
    ``source`` (looked up in ``models``, reference -> loaded model) replaces them. Examples and saved
    images come from the first group. ``extra`` entries are added to the record's top level.
    """
    jobs = [s if isinstance(s, Job) else Job(s) for s in settings]
    check_against_data(campaign, [job.setting for job in jobs])
    for job in jobs:
        if job.source is not None and job.source not in (models or {}):
            raise InputError(f"settings: source model {job.source!r} was not loaded")
    out_dir = Path(out_dir)
    if not distributed.is_main():  # under torchrun the first process checks, locks and writes the folder
        return _sweep(campaign, jobs, out_dir, command, resume, save_images, examples, models or {}, extra or {},
                      source_groups or [campaign.sources])
    check_out_dir(out_dir, resume)
    with folder_lock(out_dir):
        return _sweep(campaign, jobs, out_dir, command, resume, save_images, examples, models or {}, extra or {},
                      source_groups or [campaign.sources])


def _sweep(
    campaign: Campaign, jobs: list[Job], out_dir: Path, command: str, resume: bool,
    save_images: str | Path | None, examples: int, models: dict[str, NamedModel], extra: dict,
    groups: list[list[NamedModel]],
) -> dict:  # fmt: skip
    """``run_sweep``'s work, inside the folder lock."""
    previous_record = {"results": [], "examples": {}}
    if resume and distributed.is_main() and (out_dir / "results.json").is_file():
        previous_record = read_results(out_dir)
    previous_record = distributed.broadcast(previous_record)
    main = distributed.is_main()
    done = previous_record["results"]
    record = {**base_record(campaign, command), "plan": [job.key for job in jobs], **extra}
    if "clean" in previous_record:
        check_same_run(previous_record, record, out_dir / "results.json")
    finished = {(row["key"], row["source"], row["target"], row.get("pipeline", PLAIN_NAME)) for row in done}
    runs = [(job, group) for job in jobs for group in ([[models[job.source]]] if job.source is not None else groups)]
    for job, group in tqdm(runs, desc="settings", disable=not campaign.progress):
        source = "+".join(named.name for named in group)
        previous = [row for row in done if (row["key"], row["source"]) == (job.key, source)]
        if previous and all((job.key, source, named.name, p.name) in finished for named in campaign.targets for p in campaign.pipelines):
            record["results"] += previous
            if group is groups[0] and job.key in previous_record.get("examples", {}):
                record["examples"][job.key] = previous_record["examples"][job.key]
            continue
        outcome, rows = campaign.run(job.setting, group, out_dir / CHUNKS_FOLDER / safe_name(job.key) / safe_name(source))
        series = {} if job.series is None else {"series": job.series}
        shift = {named.name: embedding_shift(campaign, outcome, named) for named in campaign.targets}
        record["results"] += [{"key": job.key, **row, **series, "embedding_shift": shift[row["target"]]} for row in rows]
        if main and examples and group is groups[0]:  # examples are filed under the setting's key, which other sources share
            record["examples"][job.key] = write_examples(campaign, outcome, out_dir, examples)
        if main and save_images is not None and group is groups[0]:
            save_adversarial_images(campaign, outcome, Path(save_images) / job.key)
        if main:
            write_results(out_dir, record)
        distributed.barrier()  # every process is done with the setting's chunks
        if main:
            outcome.discard()
    if main:
        write_results(out_dir, record)
        shutil.rmtree(out_dir / CHUNKS_FOLDER, ignore_errors=True)  # only finished settings' (empty) folders are left
    return record


def safe_name(name: str) -> str:
    """``name`` as one folder name (a model reference may hold slashes or colons)."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
