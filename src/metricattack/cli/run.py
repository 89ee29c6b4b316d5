"""``metricattack run``: the main job, a sweep of settings (a named plan or a config's list) on one model, with the report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from metricattack.cli.checks import Parser, positive_int, yaml_only
from metricattack.cli.config import settings_from_config
from metricattack.cli.options import (
    add_attack_outputs,
    add_attack_setting,
    add_chunks,
    add_common,
    add_data,
    add_model,
    add_out,
    add_pipeline,
    add_precision,
    add_resume,
)
from metricattack.cli.wiring import (
    build_campaign,
    choose_device_once,
    finish_run,
    load_reference,
    main_metadata,
    main_model,
    refuse_white_box_problems,
    start_processes,
)
from metricattack.experiment.inputs import unique_names
from metricattack.experiment.plans import HEADLINE, PLANS, get_plan, resolve_sources, source_groups
from metricattack.experiment.results import write_results
from metricattack.experiment.sanity import sanity_checks
from metricattack.experiment.setting import NamedModel
from metricattack.experiment.sweep import check_out_dir, run_sweep
from metricattack.report.compare import training_summary
from metricattack.report.sanity import status
from metricattack.system import distributed

NAME = "run"
HELP = "the main job: clean evaluation and the standard attack sweep, with a report"
RESUMES = "settings and chunks"  # what an interrupted run has saved (the resume hint)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    for group in (add_common, add_chunks, add_precision, add_data, add_model, add_attack_outputs):
        group(parser)
    parser.add_argument("--settings", type=yaml_only, help=argparse.SUPPRESS)  # a list of settings, from --config only
    parser.add_argument("--plan", default="default",
                        help="named sweep: " + "; ".join(f"{p.name}: {p.description}" for p in PLANS.values()))
    add_out(parser, "run folder (default runs/<timestamp>)")
    add_resume(parser, "continue the run in --out, skipping finished settings")
    parser.add_argument("--subset", type=positive_int, metavar="N", help="only the queries of N query identities drawn with --seed")
    parser.add_argument("--sanity-checks", action="store_true", help="also run the robust evaluation's sanity checks "
                        "(on with --plan robust)")
    parser.add_argument("--zoo-model", action="append", default=[], metavar="NAME",
                        help="zoo models to transfer between, instead of the plan's (repeatable)")
    add_pipeline(parser, several=True)


def setting_checks() -> argparse.ArgumentParser:
    """A parser holding only the options of one setting: a YAML setting's values get the checks of `attack`'s options."""
    parser = Parser(add_help=False)
    add_attack_setting(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Sweep the plan's (or the config's) settings, then the sanity checks when asked; print and write the results."""
    plan = get_plan(args.plan)
    settings = settings_from_config(args.settings, setting_checks()) if args.settings is not None else list(plan.settings)
    device = choose_device_once(args)  # zoo models missing from disk are trained on it

    def load(reference: str) -> NamedModel:
        return load_reference(reference, device, args)

    zoo = [load(f"zoo:{name}") for name in args.zoo_model or plan.models]
    victim = zoo[0] if zoo else main_model(args)
    targets = unique_names((zoo or [victim]) + [load(r) for r in args.target_model])
    out_dir = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out_dir)  # named by the resume hint if interrupted
    device = start_processes(device)  # under torchrun the first process checks and writes the folder
    if distributed.is_main():
        check_out_dir(out_dir, args.resume)
    settings, sources, dropped = resolve_sources(settings, victim, load)
    refuse_white_box_problems(settings, zoo or [victim], sources)
    if dropped and distributed.is_main():
        print(f"skipped {len(dropped)} transfer settings: their source is the model under test")
    campaign = build_campaign(args, device, [victim], targets)
    training = {"training": {victim.name: training_summary({} if zoo else main_metadata(args))}}
    record = run_sweep(campaign, settings, out_dir, args.command, resume=args.resume, save_images=args.save_images,
                       examples=args.examples, models=sources, extra=training,
                       source_groups=source_groups(zoo) if zoo else None)
    headline = (plan.headline or HEADLINE).key
    if any(row["key"] == headline for row in record["results"]):
        record["headline"] = headline  # the plan's main number, for compare
    if args.sanity_checks or plan.sanity_checks:  # on the model as deployed: precision, flip averaging
        record["sanity"] = sanity_checks(campaign, record, campaign.sources[0], headline)
    if distributed.is_main():
        write_results(out_dir, record)
        for check in record.get("sanity", {}).get("checks", []):
            print(f"sanity check {check['name']}: {status(check)}: {check['summary']}")
    finish_run(record, out_dir)
    return 0
