"""The robustness sweep behind `metricattack run` and `metricattack attack`: settings in, result files out."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from metricattack import __version__
from metricattack.attacks.campaign import AttackSetting, Campaign, NamedModel, save_adversarial_images
from metricattack.errors import InputError
from metricattack.report.examples import write_examples
from metricattack.report.results import read_results, write_results

def settings_from_config(entries: list) -> list[AttackSetting]:
    """Settings from a YAML list of mappings (keys as AttackSetting fields), checked."""
    known = {f.name for f in fields(AttackSetting)}
    settings = []
    if not isinstance(entries, list) or not entries:
        raise InputError("settings: expected a non-empty list of attack settings")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) - known:
            raise InputError(f"settings[{number}]: expected a mapping with keys among {sorted(known)}, got {entry!r}")
        setting = AttackSetting(**entry)
        setting.validate()
        settings.append(setting)
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
    settings: list[AttackSetting],
    out_dir: str | Path,
    command: str,
    resume: bool = False,
    save_images: str | Path | None = None,
    examples: int = 3,
    source_groups: list[list[NamedModel]] | None = None,
) -> dict:
    """Clean evaluation, then each setting (with each group of source models: default the campaign's sources);
    the record is rewritten after every setting so a run can resume. Examples and saved images come from
    the first group."""
    for setting in settings:
        setting.validate()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume)
    previous_record = {"results": [], "examples": {}}
    if resume and (out_dir / "results.json").is_file():
        previous_record = read_results(out_dir)
    done = previous_record["results"]
    record = base_record(campaign, command)
    groups = source_groups or [campaign.sources]
    finished = {(row["key"], row["source"], row["target"]) for row in done}
    jobs = [(setting, group) for setting in settings for group in groups]
    for setting, group in tqdm(jobs, desc="settings", disable=not campaign.progress):
        source = "+".join(named.name for named in group)
        previous = [row for row in done if (row["key"], row["source"]) == (setting.key, source)]
        if previous and all((setting.key, source, named.name) in finished for named in campaign.targets):
            record["results"] += previous
            if group is groups[0] and setting.key in previous_record.get("examples", {}):
                record["examples"][setting.key] = previous_record["examples"][setting.key]
            continue
        outcome, rows = campaign.run(setting, sources=group)
        record["results"] += [{"key": setting.key, **row} for row in rows]
        if examples and group is groups[0]:
            record["examples"][setting.key] = write_examples(campaign, outcome, out_dir, examples)
        if save_images is not None and group is groups[0]:
            save_adversarial_images(campaign, outcome, Path(save_images) / setting.key)
        write_results(out_dir, record)
    write_results(out_dir, record)
    return record
