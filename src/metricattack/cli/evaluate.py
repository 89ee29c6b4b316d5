"""``metricattack evaluate``: clean metrics of a model on a data set."""

from __future__ import annotations

import argparse
import json

from metricattack.cli.checks import out_file
from metricattack.cli.options import add_average_precision, add_common, add_data, add_model, add_pipeline, add_precision
from metricattack.evaluation.pipeline import Pipeline
from metricattack.cli.wiring import main_reference
from metricattack.experiment.inputs import load_data
from metricattack.models.precision import with_precision
from metricattack.models.retrieval import evaluate_model, metrics_line
from metricattack.system.atomic import atomic_write_text
from metricattack.system.runtime import choose_device, seed_everything

NAME = "evaluate"
HELP = "clean retrieval metrics of a model on a data set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    for group in (add_common, add_precision, add_data, add_model):
        group(parser)
    add_pipeline(parser, several=False)
    add_average_precision(parser)
    parser.add_argument("--json", type=out_file, help="also write the metrics to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the metrics (and write them as JSON when asked)."""
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    reference = main_reference(args)
    model, meta = reference.load()
    model = with_precision(model, args.amp, args.channels_last)
    pipeline = Pipeline(args.flip, args.query_expansion, args.rerank)
    metrics = evaluate_model(model.to(device), data, device, args.batch_size, args.flip, args.image_size,
                             args.workers, args.ap, not args.no_progress, args.query_expansion, args.rerank,
                             name=reference.display_name)
    spec = model.spec
    print(data.summary())
    print(f"model {spec.arch} ({reference.weights_origin}), "
          f"distance {spec.metric}{' on L2-normalised features' if spec.normalize else ''}")
    print(f"pipeline {pipeline.name}")
    print(metrics_line(metrics))
    if args.json:
        atomic_write_text(args.json, json.dumps({"dataset": data.name, "model": meta.get("spec"), "pipeline": pipeline.as_dict(),
                                                 **metrics.as_dict()}, indent=2) + "\n")
    return 0
