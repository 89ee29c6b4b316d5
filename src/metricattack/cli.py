"""Command line: argument parsing and wiring, one function per subcommand."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from metricattack import __version__
from metricattack.attacks.campaign import CAMPAIGN_ATTACKS, GOALS, SIDES, AttackSetting, Campaign, NamedModel, save_adversarial_images
from metricattack.attacks.steps import ATTACKS
from metricattack.atomic import atomic_write_text
from metricattack.config import apply_config
from metricattack.data.synthetic import SyntheticConfig, contact_sheet, generate
from metricattack.errors import InputError
from metricattack.inputs import load_data, model_from_reference, unique_names
from metricattack.models import FORMAT_NAMES, build_model, load_model, model_names, save_checkpoint
from metricattack.models.zoo import zoo_names, zoo_table
from metricattack.report.examples import write_examples
from metricattack.report.html import build_report
from metricattack.report.results import text_table, transfer_matrix, write_results
from metricattack.retrieval import evaluate_model, metrics_line
from metricattack.runtime import choose_device, seed_everything
from metricattack.plans import PLANS, get_plan, source_groups
from metricattack.sweep import base_record, check_out_dir, run_sweep, settings_from_config
from metricattack.training.loop import CHECKPOINT_NAME, TrainConfig, train_model


# --- shared option groups ------------------------------------------------------------------
def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command shares."""
    parser.add_argument("--config", help="YAML file of options (command-line options override it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--workers", type=int, default=0, help="image-reading worker processes (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_data(parser: argparse.ArgumentParser) -> None:
    """Which data set to read."""
    parser.add_argument("--dataset", help="market1501, dukemtmc, msmt17, cuhk03-detected, cuhk03-labeled, folder "
                        "(default: the bundled synthetic data)")
    parser.add_argument("--data-root", help="folder holding the data set")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize images on load")


def add_model(parser: argparse.ArgumentParser) -> None:
    """Which model to load."""
    parser.add_argument("--model", help=f"architecture ({', '.join(model_names())}); default: the bundled model")
    parser.add_argument("--weights", help="checkpoint: ours (.safetensors + .json) or torchreid / paper code (.pth)")
    parser.add_argument("--weights-format", default="auto", choices=FORMAT_NAMES, help="foreign checkpoint layout")


def add_attack(parser: argparse.ArgumentParser, single: bool) -> None:
    """Attack options: one setting (``attack``) or a sweep (``run``)."""
    parser.add_argument("--target-model", action="append", default=[], metavar="MODEL",
                        help="also evaluate the adversarial images on this model (default, a checkpoint, or ARCH:PATH); repeatable")
    parser.add_argument("--no-quantize", action="store_true", help="evaluate adversarial images without 8-bit rounding")
    parser.add_argument("--save-images", metavar="DIR", help="write adversarial images as PNGs in the data set's layout")
    parser.add_argument("--ap", default="standard", choices=("standard", "trapezoid"), help="AP definition")
    parser.add_argument("--examples", type=int, default=3, help="ranking lists saved per setting for the report")
    if single:
        parser.add_argument("--attack", default="ifgsm", help=f"one of {', '.join([*ATTACKS, *CAMPAIGN_ATTACKS])}")
        parser.add_argument("--eps", type=float, default=5.0, help="perturbation size in pixels out of 255 (default 5)")
        parser.add_argument("--steps", type=int, help="iterations (default: the paper's min(eps+4, 1.25 eps))")
        parser.add_argument("--step-size", type=float, help="step size in pixels out of 255 (default 1)")
        parser.add_argument("--norm", default="linf", help="linf or l2")
        parser.add_argument("--side", default="gallery", help=f"one of {', '.join(SIDES)}")
        parser.add_argument("--goal", default="untargeted", help=f"one of {', '.join(GOALS)}")
        parser.add_argument("--target-pid", type=int, help="targeted: the identity to pull toward (default random)")
        parser.add_argument("--restarts", type=int, help="pgd: random restarts, the best per image kept (default 1)")
        parser.add_argument("--source-model", action="append", default=[], metavar="MODEL",
                            help="model that makes the images; several form an averaged-loss ensemble (default: --model/--weights)")
        parser.add_argument("--transfer-each", action="store_true",
                            help="with several --source-model: also attack with each alone (rows of a transfer matrix)")
        parser.add_argument("--out", help="write results.json/.csv/.md and the report here")
    else:
        parser.add_argument("--settings", help=argparse.SUPPRESS)  # a list of settings, from --config only
        parser.add_argument("--plan", default="default",
                            help="named sweep: " + "; ".join(f"{p.name}: {p.description}" for p in PLANS.values()))
        parser.add_argument("--out", help="run folder (default runs/<timestamp>)")
        parser.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished settings")
        parser.add_argument("--zoo-model", action="append", default=[], metavar="NAME",
                            help="zoo models to transfer between, instead of the plan's (repeatable)")


# --- subcommands ---------------------------------------------------------------------------
def cmd_synth(args: argparse.Namespace) -> int:
    """metricattack synth: render the synthetic data set (and a contact sheet)."""
    config = SyntheticConfig(train_ids=args.train_ids, test_ids=args.test_ids, cameras=args.cameras,
                             height=args.height, width=args.width, seed=args.seed)
    root = generate(Path(args.out), config, progress=not args.no_progress)
    print(f"wrote {root}")
    if args.contact_sheet:
        print(f"wrote {contact_sheet(root, out=Path(args.contact_sheet), cameras=args.cameras)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """metricattack evaluate: clean metrics of a model on a data set."""
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    model, meta = load_model(args.model, args.weights, args.weights_format)
    metrics = evaluate_model(model.to(device), data, device, args.batch_size, args.flip, args.image_size,
                             args.workers, args.ap, not args.no_progress)
    spec = model.spec
    print(data.summary())
    print(f"model {spec.arch} ({args.weights or ('bundled default' if args.model is None else 'random weights')}), "
          f"distance {spec.metric}{' on L2-normalised features' if spec.normalize else ''}")
    print(metrics_line(metrics))
    if args.json:
        atomic_write_text(args.json, json.dumps({"dataset": data.name, "model": meta.get("spec"), **metrics.as_dict()}, indent=2) + "\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """metricattack train: train a model, checkpoint every epoch, evaluate at the end."""
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    out_dir = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder for checkpoints)")
    options = {"embedding_dim": args.embedding_dim}
    if args.input_size:
        options["input_size"] = tuple(args.input_size)
    if args.last_stride is not None:
        options["last_stride"] = args.last_stride
    model = build_model(args.model, num_classes=data.num_train_pids, **options)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "milestones"},
                         milestones=tuple(args.milestones))
    metadata = {"dataset": data.name, "train_command": args.command}
    train_model(model, data.train, config, out_dir, device, resume=args.resume, image_size=args.image_size,
                workers=args.workers, progress=not args.no_progress, metadata=metadata)
    metrics = evaluate_model(model, data, device, args.batch_size, image_size=args.image_size, workers=args.workers,
                             progress=False)
    path = save_checkpoint(out_dir / CHECKPOINT_NAME, model, epoch=config.epochs, train_config=asdict(config),
                           clean_metrics=metrics.as_dict(), **metadata)
    print(metrics_line(metrics))
    print(f"wrote {path}")
    return 0


def build_campaign(args: argparse.Namespace, sources: list[NamedModel], targets: list[NamedModel]) -> Campaign:
    """A campaign on the data the options name."""
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    return Campaign(data, sources, targets, device, batch_size=args.batch_size, seed=args.seed,
                    quantize_images=not args.no_quantize, average_precision=args.ap,
                    image_size=args.image_size, workers=args.workers, progress=not args.no_progress)


def main_model(args: argparse.Namespace) -> NamedModel:
    """The model named by --model / --weights (the bundled one when neither is given)."""
    model, _ = load_model(args.model, args.weights, args.weights_format)
    name = "default" if args.model is None and args.weights is None else Path(args.weights or args.model).stem
    return NamedModel(name, model)


def finish_run(record: dict, out_dir: Path) -> None:
    """Print the table and where the files are; build the report."""
    print(text_table(record), end="")
    print(f"results in {out_dir}/results.json, results.csv, results.md")
    print(f"report: {build_report(out_dir)}")


def cmd_run(args: argparse.Namespace) -> int:
    """metricattack run: the sweep of settings on one model, with result files and the report."""
    plan = get_plan(args.plan)
    settings = settings_from_config(args.settings) if args.settings else list(plan.settings)
    zoo = [model_from_reference(f"zoo:{name}", not args.no_progress) for name in args.zoo_model or plan.models]
    victim = zoo[0] if zoo else main_model(args)
    targets = unique_names((zoo or [victim]) + [model_from_reference(r) for r in args.target_model])
    out_dir = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    check_out_dir(out_dir, args.resume)
    campaign = build_campaign(args, [victim], targets)
    record = run_sweep(campaign, settings, out_dir, args.command, resume=args.resume,
                       save_images=args.save_images, examples=args.examples,
                       source_groups=source_groups(zoo) if zoo else None)
    finish_run(record, out_dir)
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """metricattack attack: one setting, from source model(s) to target model(s)."""
    setting = AttackSetting(args.attack, args.eps, args.side, args.goal, args.norm, args.steps, args.step_size, args.target_pid,
                            args.restarts)
    setting.validate()
    sources = unique_names([model_from_reference(r) for r in args.source_model]) or [main_model(args)]
    targets = unique_names(sources + [model_from_reference(r) for r in args.target_model])
    groups = [sources] + ([[s] for s in sources] if args.transfer_each and len(sources) > 1 else [])
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        check_out_dir(out_dir, resume=False)
    campaign = build_campaign(args, sources, targets)
    record = base_record(campaign, args.command)
    for group in groups:
        outcome, rows = campaign.run(setting, sources=group)
        record["results"] += [{"key": setting.key, **row} for row in rows]
        if group is sources and out_dir is not None and args.examples:
            record["examples"][setting.key] = write_examples(campaign, outcome, out_dir, args.examples)
        if group is sources and args.save_images:
            print(f"wrote adversarial images under {save_adversarial_images(campaign, outcome, args.save_images)}")
    print(text_table(record), end="")
    if len(targets) > 1:
        print(transfer_matrix(record), end="")
    if out_dir is not None:
        write_results(out_dir, record)
        print(f"results in {out_dir}/results.json, results.csv, results.md")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    """metricattack zoo: train the zoo models not on disk yet (unless --list), then list them."""
    names = args.names or zoo_names()
    for name in names if not args.list else []:
        model_from_reference(f"zoo:{name}", not args.no_progress)
    print(zoo_table(names), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """metricattack report: rebuild report.html from a run folder."""
    print(f"report: {build_report(Path(args.run_dir))}")
    return 0


# --- parser and entry point ------------------------------------------------------------------
def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each subcommand's parser (``--config`` re-parses with the latter)."""
    parser = argparse.ArgumentParser(prog="metricattack", description="Adversarial metric attacks on person re-identification.")
    parser.add_argument("--version", action="version", version=f"metricattack {__version__}")
    sub = parser.add_subparsers(dest="command_name", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}

    def subcommand(name: str, func, help_text: str, *groups) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        for group in groups:
            group(p)
        p.set_defaults(func=func)
        subparsers[name] = p
        return p

    p = subcommand("synth", cmd_synth, "render a synthetic pedestrian data set (Market-1501 layout)", add_common)
    defaults = SyntheticConfig()
    p.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    for name in ("train_ids", "test_ids", "cameras", "height", "width"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    p.add_argument("--contact-sheet", metavar="PNG", help="also write a contact sheet (8 ids x cameras)")

    p = subcommand("evaluate", cmd_evaluate, "clean retrieval metrics of a model on a data set", add_common, add_data, add_model)
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--ap", default="standard", choices=("standard", "trapezoid"), help="AP definition")
    p.add_argument("--json", help="also write the metrics to this JSON file")

    p = subcommand("train", cmd_train, "train a re-ID model", add_common, add_data)
    train_defaults = TrainConfig()
    p.add_argument("--model", default="compact", help=f"architecture ({', '.join(model_names())})")
    p.add_argument("--embedding-dim", type=int, help="add a linear embedding of this size before the BNNeck")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="model input size (default per model)")
    p.add_argument("--last-stride", type=int, choices=(1, 2), help="ResNet: stride of the last stage (default 1)")
    for f in fields(TrainConfig):
        if f.name in ("seed", "batch_size", "milestones", "flip"):
            continue
        default = getattr(train_defaults, f.name)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default, help=f"default {default}")
    p.add_argument("--milestones", type=int, nargs="*", default=list(train_defaults.milestones), help="epochs for step decay")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flip")
    p.add_argument("--out", help="folder for checkpoints (default runs/train-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch saved in --out")

    subcommand("attack", cmd_attack, "run one attack setting (white-box or transfer)",
               add_common, add_data, add_model, lambda p: add_attack(p, single=True))  # fmt: skip
    subcommand("run", cmd_run, "the main job: clean evaluation and the standard attack sweep, with a report",
               add_common, add_data, add_model, lambda p: add_attack(p, single=False))  # fmt: skip
    p = subcommand("zoo", cmd_zoo, "the model zoo: train missing models (cached), list clean metrics", add_common)
    p.add_argument("names", nargs="*", help=f"zoo models (default all: {', '.join(zoo_names())})")
    p.add_argument("--list", action="store_true", help="only list, train nothing")
    p = subcommand("report", cmd_report, "rebuild a run's report.html from its results.json")
    p.add_argument("run_dir", help="a folder written by metricattack run")
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 on bad input (one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    try:
        args = apply_config(subparsers[args.command_name], argv[1:], args) if args.command_name in subparsers else args
        args.command = "metricattack " + " ".join(shlex.quote(a) for a in argv)
        return args.func(args)
    except InputError as exc:
        print(f"metricattack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
