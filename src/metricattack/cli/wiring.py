"""What ``run`` and ``attack`` share: the device, the models the options name, the campaign on the options' data,
the summary. The options become typed objects here; nothing below ``cli`` reads an argparse namespace."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metricattack.cli.train import train_command
from metricattack.data.subset import subset_query_identities
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import pipelines_from_options
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.inputs import load_data, model_from_reference
from metricattack.experiment.options import EvaluationProtocol, Reading
from metricattack.experiment.plans import Job
from metricattack.experiment.registry import attack_kind
from metricattack.experiment.results import text_table
from metricattack.experiment.robustness_score import score_lines
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.models import ModelOptions, bundled_checkpoint, read_metadata
from metricattack.models.checkpoints import checkpoint_paths
from metricattack.models.deployment import Deployment
from metricattack.models.onnx import white_box_problem
from metricattack.models.options import OPTION_KEYS
from metricattack.models.references import ModelReference
from metricattack.models.zoo import zoo_entry
from metricattack.report.html import build_report
from metricattack.system import distributed
from metricattack.system.runtime import choose_device, seed_everything
from metricattack.training.zoo import obtain_zoo_model

ZOO_PREFIX = "zoo:"


def choose_device_once(args: argparse.Namespace) -> torch.device:
    """The device ``--device`` names (``auto``: CUDA if available): chosen here, once per command."""
    return choose_device(args.device)


def start_processes(device: torch.device) -> torch.device:
    """The device of this process; under torchrun, join the group and take this rank's GPU (once per command)."""
    return distributed.start(device)


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The main model's stated options (``--input-size``, ``--mean``, ``--std``, ``--distance``, ``--normalize``)."""
    return ModelOptions.from_mapping({key: getattr(args, key, None) for key in OPTION_KEYS})


def main_reference(args: argparse.Namespace) -> ModelReference:
    """The model named by --model / --weights / --weights-format and the option flags."""
    return ModelReference(args.model, args.weights, args.weights_format, model_options(args))


def load_reference(reference: str | dict, device: torch.device, args: argparse.Namespace) -> NamedModel:
    """The model a reference names (``experiment.inputs.model_from_reference``); a ``zoo:NAME`` model missing from
    disk is trained first on ``device``, on the default synthetic data, as its ``metricattack train`` command says."""
    progress = not args.no_progress
    if isinstance(reference, str) and reference.startswith(ZOO_PREFIX):
        name = reference[len(ZOO_PREFIX):]
        model, _ = obtain_zoo_model(name, load_data(None, None, progress), device, train_command(zoo_entry(name)), progress)
        return NamedModel(name, model)
    return model_from_reference(reference)


def refuse_white_box_problems(settings: list[AttackSetting | Job], sources: list[NamedModel],
                              models: dict[str, NamedModel] | None = None) -> None:
    """Before any work, the one-line InputError of a source model that a white-box setting needs gradients of but
    that has none (an ONNX graph onnx2torch cannot convert); ``models`` holds a Job's source (reference -> model)."""
    for item in settings:
        setting, source = (item.setting, item.source) if isinstance(item, Job) else (item, None)
        if not attack_kind(setting.attack).white_box:
            continue
        for named in [models[source]] if source is not None and source in (models or {}) else sources:
            if (problem := white_box_problem(named.model)) is not None:
                raise InputError(problem)


def build_campaign(args: argparse.Namespace, device: torch.device, sources: list[NamedModel], targets: list[NamedModel]) -> Campaign:
    """A campaign on the data the options name, deployed on ``device`` as the options say."""
    seed_everything(args.seed)
    pipelines = pipelines_from_options(args.flip, args.query_expansion, args.rerank, args.pipelines)  # checked before reading data
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    if getattr(args, "subset", None) is not None:
        data = subset_query_identities(data, args.subset, args.seed)
    deployment = Deployment(device, args.amp, args.channels_last, pipelines[0].flip)
    image_size = None if args.image_size is None else tuple(args.image_size)
    reading = Reading(args.batch_size, image_size, args.workers, args.chunk_size, not args.no_progress)
    protocol = EvaluationProtocol(pipelines, args.ap, not args.no_quantize, args.seed)
    return Campaign(data, sources, targets, deployment, reading, protocol)


def main_model(args: argparse.Namespace) -> NamedModel:
    """The model named by --model / --weights (the bundled one when neither is given)."""
    reference = main_reference(args)
    return NamedModel(reference.display_name, reference.load()[0])


def main_metadata(args: argparse.Namespace) -> dict:
    """The checkpoint metadata of the model --model / --weights name (empty for foreign or random weights)."""
    if args.weights is None:
        bundled = bundled_checkpoint(args.model or "default")
        return read_metadata(bundled) if bundled else {}
    return read_metadata(args.weights) if checkpoint_paths(args.weights)[1].is_file() else {}


def finish_run(record: dict, out_dir: Path) -> None:
    """Print the table and where the files are; build the report."""
    if not distributed.is_main():
        return
    print(text_table(record), end="")
    print(score_lines(record), end="")
    print(f"results in {out_dir}/results.json, results.csv, results.md")
    print(f"report: {build_report(out_dir)}")
