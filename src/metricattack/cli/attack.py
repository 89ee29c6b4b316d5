"""``metricattack attack``: one setting, from source model(s) to target model(s), white-box or by transfer."""

from __future__ import annotations

import argparse
from pathlib import Path

from metricattack.cli.checks import model_reference
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
)
from metricattack.cli.wiring import build_campaign, choose_device_once, load_reference, main_model, refuse_white_box_problems, start_processes
from metricattack.experiment.inputs import unique_names
from metricattack.experiment.registry import check_setting
from metricattack.experiment.results import text_table, transfer_matrix
from metricattack.experiment.robustness_score import score_lines
from metricattack.experiment.setting import AttackSetting
from metricattack.experiment.sweep import check_out_dir, run_sweep
from metricattack.system import distributed

NAME = "attack"
HELP = "run one attack setting (white-box or transfer)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    for group in (add_common, add_chunks, add_precision, add_data, add_model, add_attack_outputs, add_attack_setting):
        group(parser)
    parser.add_argument("--source-model", action="append", default=[], type=model_reference, metavar="MODEL",
                        help="model that makes the images; several form an averaged-loss ensemble (default: --model/--weights)")
    parser.add_argument("--transfer-each", action="store_true",
                        help="with several --source-model: also attack with each alone (rows of a transfer matrix)")
    add_out(parser, "write results.json/.csv/.md and the report here")
    add_pipeline(parser, several=True)


def setting_of(args: argparse.Namespace) -> AttackSetting:
    """The setting the options describe, checked."""
    setting = AttackSetting(args.attack, args.eps, args.side, args.goal, args.norm, args.steps, args.step_size, args.target_pid,
                            args.restarts, args.attack_distance, args.schedule, args.attack_loss)
    check_setting(setting)
    return setting


def run(args: argparse.Namespace) -> int:
    """Attack with the sources (each alone too with --transfer-each), evaluate on every target, print the tables."""
    setting = setting_of(args)
    device = choose_device_once(args)
    sources = unique_names([load_reference(r, device, args) for r in args.source_model]) or [main_model(args)]
    targets = unique_names(sources + [load_reference(r, device, args) for r in args.target_model])
    refuse_white_box_problems([setting], sources)
    out_dir = Path(args.out) if args.out else None
    device = start_processes(device)  # under torchrun every process attacks its share; the first one writes
    if out_dir is not None and distributed.is_main():
        check_out_dir(out_dir, resume=False)
    campaign = build_campaign(args, device, sources, targets)
    sources = campaign.sources  # as the campaign deploys them (with flip averaging when asked)
    groups = [sources] + ([[s] for s in sources] if args.transfer_each and len(sources) > 1 else [])
    # with --out the attacked images go to disk, a chunk at a time; `attack` does not resume: its chunks never outlive it
    record = run_sweep(campaign, [setting], out_dir, args.command, save_images=args.save_images,
                       examples=args.examples if out_dir is not None else 0, source_groups=groups, images_by_setting=False,
                       keep_chunks=False)
    if not distributed.is_main():
        return 0
    if args.save_images:
        print(f"wrote adversarial images under {args.save_images}")
    print(text_table(record) + score_lines(record), end="")
    if len(targets) > 1:
        print(transfer_matrix(record), end="")
    if out_dir is not None:
        print(f"results in {out_dir}/results.json, results.csv, results.md")
    else:
        print("no files written (pass --out DIR to keep results.json/.csv/.md)")
    return 0
