"""``metricattack wear``: optimise a printed pattern on a wearer's top through the synthetic renderer and
score it on held-out cameras (``metricattack.wearing``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from metricattack.cli.checks import integer, model_reference, nonneg_float, nonneg_int, positive_float, positive_int
from metricattack.cli.options import add_common, add_model, add_out, add_resume
from metricattack.cli.wiring import load_reference, main_reference
from metricattack.data import load_dataset
from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.texture import AREAS
from metricattack.errors import InputError
from metricattack.experiment.inputs import load_data
from metricattack.experiment.setting import NamedModel
from metricattack.system.runtime import choose_device, seed_everything
from metricattack.wearing.results import summary_lines
from metricattack.wearing.run import WearRun, run_wear
from metricattack.wearing.setting import GOALS, WearSetting, default_cameras
from metricattack.wearing.visuals import read_pattern
from metricattack.wearing.wearers import choose_target, choose_wearers, synthetic_config

NAME = "wear"
HELP = "optimise a wearable pattern (a print on the top) and score it on held-out cameras"
RESUMES = "wearers"
DEFAULT_TRANSFER = "zoo:compact_softmax"  # the smallest shipped zoo model: the same CNN, another seed and loss


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_common(parser)
    add_model(parser)
    add_out(parser, "run folder (default runs/wear-<timestamp>)")
    add_resume(parser, "skip the wearers already in --out")
    defaults = WearSetting()
    parser.add_argument("--data-root", help="a synthetic tree written by metricattack synth (default: the bundled synthetic data)")
    parser.add_argument("--pid", type=integer, help="the one wearer (a test identity); default: --identities of them")
    parser.add_argument("--identities", type=positive_int, default=10, help="wearers: the first N test identities (default 10)")
    parser.add_argument("--goal", default=defaults.goal, choices=GOALS, help="evade (default) or impersonate")
    parser.add_argument("--target-pid", type=integer, help="impersonate: the target (default: one drawn per wearer)")
    parser.add_argument("--area", default=defaults.area, choices=tuple(AREAS), help="patch (chest and back, default) or top")
    parser.add_argument("--train-cameras", type=integer, nargs="*", metavar="C", help="cameras to optimise on (default: the first half)")
    parser.add_argument("--test-cameras", type=integer, nargs="*", metavar="C", help="held-out cameras to score on (default: the rest)")
    parser.add_argument("--steps", type=positive_int, default=defaults.steps, help=f"Adam steps (default {defaults.steps})")
    parser.add_argument("--renders", type=positive_int, default=defaults.renders,
                        help=f"fresh renders of the wearer per step (default {defaults.renders})")
    parser.add_argument("--random-cameras", type=nonneg_int, default=defaults.random_cameras, metavar="N",
                        help=f"more renders per step, each through a new random camera (default {defaults.random_cameras})")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr, help=f"Adam's starting learning rate on W, T = sigmoid(W), decaying to 0 (default {defaults.lr})")
    parser.add_argument("--tv-weight", type=nonneg_float, default=defaults.tv_weight,
                        help=f"weight of the total variation (default {defaults.tv_weight})")
    parser.add_argument("--print-weight", type=nonneg_float, default=defaults.print_weight,
                        help=f"weight of the non-printability score (default {defaults.print_weight})")
    parser.add_argument("--texture-size", type=positive_int, nargs=2, metavar=("H", "W"), default=list(defaults.texture_size),
                        help=f"texels of the print (default {defaults.texture_size[0]} {defaults.texture_size[1]})")
    parser.add_argument("--eval-renders", type=positive_int, default=defaults.eval_renders,
                        help=f"renders per camera scored, each query and gallery image (default {defaults.eval_renders})")
    parser.add_argument("--pattern", help="score this print (a PNG of --texture-size texels) instead of optimising one")
    parser.add_argument("--transfer", type=model_reference, default=DEFAULT_TRANSFER,
                        help=f"also score the prints on this model (default {DEFAULT_TRANSFER}; none: skip)")


def build_setting(args: argparse.Namespace, config: SyntheticConfig) -> WearSetting:
    """The setting the options give, checked against the data's cameras."""
    train, test = default_cameras(config.cameras)
    setting = WearSetting(
        goal=args.goal, area=args.area,
        train_cameras=tuple(train if args.train_cameras is None else args.train_cameras),
        test_cameras=tuple(test if args.test_cameras is None else args.test_cameras),
        steps=args.steps, renders=args.renders, lr=args.lr, tv_weight=args.tv_weight, print_weight=args.print_weight,
        texture_size=tuple(args.texture_size), eval_renders=args.eval_renders, random_cameras=args.random_cameras,
    )  # fmt: skip
    setting.validate(config.cameras)
    return setting


def checked_pattern(path: str, size: tuple[int, int]):
    """The --pattern print, checked to have --texture-size texels."""
    if not Path(path).is_file():
        raise InputError(f"--pattern {path}: file not found (expected a PNG of {size[0]}x{size[1]} texels)")
    pattern = read_pattern(Path(path))
    if pattern.shape[:2] != tuple(size):
        raise InputError(f"--pattern {path}: expected {size[0]}x{size[1]} texels (h w, as --texture-size), "
                         f"got {pattern.shape[0]}x{pattern.shape[1]}")
    return pattern


def run(args: argparse.Namespace) -> int:
    """Check every option, then optimise and score each wearer's print; print the summary."""
    progress = not args.no_progress
    config = SyntheticConfig() if args.data_root is None else synthetic_config(Path(args.data_root))
    setting = build_setting(args, config)
    if args.target_pid is not None and setting.goal != "impersonate":
        raise InputError("--target-pid: only with --goal impersonate")
    pattern = None if args.pattern is None else checked_pattern(args.pattern, setting.texture_size)
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(None, None, progress) if args.data_root is None else load_dataset("market1501", args.data_root)
    wearers = choose_wearers(data, args.pid, args.identities)
    if setting.goal == "impersonate":
        for pid in wearers:
            choose_target(data, pid, args.target_pid, args.seed, setting.test_cameras)
    reference = main_reference(args)
    model = NamedModel(reference.display_name, reference.load()[0].to(device))
    transfer = None if args.transfer == "none" else load_reference(args.transfer, device, args)
    out_dir = Path(args.out or f"runs/wear-{time.strftime('%Y%m%d-%H%M%S')}")
    record = run_wear(WearRun(data, config, model, setting, out_dir, wearers, transfer, args.target_pid, pattern,
                              args.seed, device, args.batch_size, progress, args.resume, args.command))  # fmt: skip
    print(summary_lines(record["summary"]), end="")
    print(f"results in {out_dir}/results.json, results.csv, results.md; report: {out_dir}/report.html")
    return 0
