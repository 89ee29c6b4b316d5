"""The robustness sweep behind `metricattack run` and `metricattack attack`: settings in, result files out."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tqdm.auto import tqdm

from metricattack import __version__
from metricattack.system import distributed
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.targets import assign_targets
from metricattack.experiment.saved_images import save_adversarial_images
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import PLAIN_NAME
from metricattack.system.lock import LOCK_NAME, check_unlocked, folder_lock
from metricattack.system.atomic import atomic_write_text, folder_problem, read_document
from metricattack.experiment.plans import Job
from metricattack.experiment.examples import write_examples
from metricattack.experiment.robustness_score import robustness_scores
from metricattack.experiment.results import read_results, write_results
from metricattack.experiment.registry import check_setting, run_attack
from metricattack.experiment.sanity import embedding_shift
from metricattack.experiment.scoring import result_rows


# what must match for --resume to continue a run: the rows of the record and the stored chunks must come from the
# same experiment; each key with the options that set it (named when a resume is refused)
IDENTITY_OPTIONS = {
    "seed": "--seed",
    "quantize": "--no-quantize",
    "attacked_images": "--image-size, --flip and --amp",
    "average_precision": "--ap",
    "dataset": "--dataset, --data-root and --subset",
    "models": "models and model options",
    "plan": "--plan or settings",
    "chunk_size": "--chunk-size",
}
IDENTITY_KEYS = tuple(IDENTITY_OPTIONS)
CHUNKS_FOLDER = "chunks"  # out_dir/chunks/<setting>/<source>/: the finished chunks of the setting under way
IDENTITY_NAME = "identity.json"  # out_dir/chunks/identity.json: the identity of the run the chunks belong to


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
        check_setting(setting)
        if setting.target_pid is None:
            continue
        references = {"query": [campaign.gallery], "gallery": [campaign.query], "both": [campaign.gallery, campaign.query]}
        for reference in references[setting.side]:
            try:
                assign_targets(reference.pids[:0], reference.pids, None, fixed=setting.target_pid)
            except InputError as exc:
                raise InputError(f"setting {setting.key}: {exc} (nothing was attacked)") from None


def check_same_run(previous: dict, identity: dict, path: Path) -> None:
    """Refuse to resume into a record (or chunks) made by another experiment: ``identity`` (``run_identity``)
    differs from ``previous`` in a key of IDENTITY_KEYS."""
    for key in IDENTITY_KEYS:
        if key not in previous or previous[key] == identity[key]:
            continue  # records written before a key existed are not held to it
        old, new, options = previous[key], identity[key], IDENTITY_OPTIONS[key]
        if isinstance(old, dict) and isinstance(new, dict):
            key, old, new = next((f"{key}.{k}", old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
        raise InputError(
            f"--resume: {path} was made with {key} {json.dumps(old)}, this run has {json.dumps(new)} "
            f"(resume with the same {options}, or choose another --out)"
        )


def run_identity(campaign: Campaign, plan: list[str]) -> dict:
    """The keys of IDENTITY_KEYS for a campaign and the keys of its settings, as results.json stores them."""
    identity = {
        "seed": campaign.seed,
        "quantize": campaign.quantize_images,
        "attacked_images": {  # what, besides the models, changes the adversarial images
            "query_size": list(campaign.query.shape[1:]),
            "gallery_size": list(campaign.gallery.shape[1:]),
            **campaign.deployment.identity,  # flip averaging (the attack goes through it) and precision
        },
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
        "plan": plan,
        "chunk_size": campaign.chunk_size,
    }
    return json.loads(json.dumps(identity))  # as it is stored (tuples become lists)


def base_record(campaign: Campaign, command: str, identity: dict) -> dict:
    """The run's description (with its ``identity``) and clean metrics, before any attack result (the results.json schema)."""
    return {
        "metricattack_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "device": str(campaign.device),
        **identity,
        "pipelines": [pipeline.as_dict() for pipeline in campaign.pipelines],
        "clean": {named.name: campaign.clean_result(named) for named in campaign.targets},
        "clean_by_pipeline": {
            pipeline.name: {named.name: campaign.clean_result(named, pipeline) for named in campaign.targets}
            for pipeline in campaign.pipelines
        },
        "results": [],
        "examples": {},
    }


def previous_identities(out_dir: Path) -> list[tuple[dict, Path]]:
    """What a run folder says it was made with: its results.json and the identity beside its stored chunks."""
    found = []
    if (out_dir / "results.json").is_file():
        found.append((read_results(out_dir), out_dir / "results.json"))
    path = out_dir / CHUNKS_FOLDER / IDENTITY_NAME
    if path.is_file():
        stored = read_document(path, json.loads, (json.JSONDecodeError,), str(path), "the identity of a run's stored chunks")
        if not isinstance(stored, dict):
            raise InputError(f"{path}: expected a mapping (the identity of a run's stored chunks)")
        found.append((stored, path))
    return found


def run_sweep(
    campaign: Campaign,
    settings: list[AttackSetting | Job],
    out_dir: str | Path | None,
    command: str,
    resume: bool = False,
    save_images: str | Path | None = None,
    examples: int = 3,
    models: dict[str, NamedModel] | None = None,
    extra: dict | None = None,
    source_groups: list[list[NamedModel]] | None = None,
    images_by_setting: bool = True,
    keep_chunks: bool = True,
) -> dict:
    """Clean evaluation, then each setting; the record is rewritten after every setting so a run can resume.

    Every setting is checked against the data first; the folder is locked while the run writes into it
    (without ``out_dir`` nothing is written: chunks stay in memory, and the record is only returned).
    Each setting runs with each group of source models (default: the campaign's sources); a Job's
    ``source`` (looked up in ``models``, reference -> loaded model) replaces them. Examples and saved
    images (under ``save_images/KEY/``, or straight in ``save_images`` when not ``images_by_setting``)
    come from the first group. ``extra`` entries are added to the record's top level. The chunks of a setting
    left unfinished are kept for ``resume`` unless not ``keep_chunks`` (a command that does not resume).
    """
    jobs = [s if isinstance(s, Job) else Job(s) for s in settings]
    check_against_data(campaign, [job.setting for job in jobs])
    for job in jobs:
        if job.source is not None and job.source not in (models or {}):
            raise InputError(f"settings: source model {job.source!r} was not loaded")
    out_dir = None if out_dir is None else Path(out_dir)
    images = None if save_images is None else (Path(save_images), images_by_setting)
    work = (campaign, jobs, out_dir, command, resume, images, examples, models or {}, extra or {}, source_groups or [campaign.sources])
    if out_dir is None or not distributed.is_main():  # under torchrun the first process checks, locks and writes the folder
        return _sweep(*work)
    check_out_dir(out_dir, resume)
    with folder_lock(out_dir):
        try:
            return _sweep(*work)
        finally:  # the chunks folder outlives the run only when it holds chunks to resume from
            chunks = out_dir / CHUNKS_FOLDER
            if not keep_chunks or not any(path.suffix == ".safetensors" for path in chunks.rglob("*")):
                shutil.rmtree(chunks, ignore_errors=True)


def _sweep(
    campaign: Campaign, jobs: list[Job], out_dir: Path | None, command: str, resume: bool,
    images: tuple[Path, bool] | None, examples: int, models: dict[str, NamedModel], extra: dict,
    groups: list[list[NamedModel]],
) -> dict:  # fmt: skip
    """``run_sweep``'s work, inside the folder lock."""
    main = distributed.is_main()
    writes = main and out_dir is not None
    earlier = distributed.broadcast(previous_identities(out_dir) if resume and writes else [])
    identity = run_identity(campaign, [job.key for job in jobs])
    for stored, path in earlier:  # before any work: the clean evaluation, the attacks
        check_same_run(stored, identity, path)
    if writes:  # the chunks about to be stored are this run's
        atomic_write_text(out_dir / CHUNKS_FOLDER / IDENTITY_NAME, json.dumps(identity, indent=2) + "\n")
    previous_record = next((stored for stored, path in earlier if path.name == "results.json"), {"results": [], "examples": {}})
    done = previous_record["results"]
    record = {**base_record(campaign, command, identity), **extra}
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
        folder = None if out_dir is None else out_dir / CHUNKS_FOLDER / safe_name(job.key) / safe_name(source)
        outcome = run_attack(campaign, job.setting, [campaign.deploy(named) for named in group], folder)
        rows = result_rows(campaign, outcome, group)
        series = {} if job.series is None else {"series": job.series}
        shift = {named.name: embedding_shift(campaign, outcome, named) for named in campaign.targets}
        record["results"] += [{"key": job.key, **row, **series, "embedding_shift": shift[row["target"]]} for row in rows]
        if writes and examples and group is groups[0]:  # examples are filed under the setting's key, which other sources share
            record["examples"][job.key] = write_examples(campaign, outcome, out_dir, examples)
        if main and images is not None and group is groups[0]:
            save_adversarial_images(campaign, outcome, images[0] / job.key if images[1] else images[0])
        if writes:
            write_results(out_dir, record)
        distributed.barrier()  # every process is done with the setting's chunks
        if main:
            outcome.discard()
    record["robustness"] = robustness_scores(record)
    if writes:
        write_results(out_dir, record)
    return record


def safe_name(name: str) -> str:
    """``name`` as one folder name (a model reference may hold slashes or colons)."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
