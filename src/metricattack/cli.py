"""Command line: argument parsing and wiring, one function per subcommand."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from metricattack import __version__, distributed
from metricattack.attacks.campaign import CAMPAIGN_ATTACKS, GOALS, SIDES, AttackSetting, Campaign, NamedModel, save_adversarial_images
from metricattack.attacks.steps import ATTACKS, SCHEDULES
from metricattack.evaluation.distance import DISTANCE_METRICS
from metricattack.atomic import atomic_write_text
from metricattack.config import apply_config
from metricattack.data.synthetic import SyntheticConfig, contact_sheet, generate
from metricattack.defenses import DEFENSE_OPTIONS, DEFENSES, build_defense
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import Pipeline, pipelines_from_options
from metricattack.inputs import load_data, model_from_reference, unique_names
from metricattack.interrupt import interrupt_exit_code, sigterm_raises
from metricattack.data.subset import subset_query_identities
from metricattack.models import FORMAT_NAMES, build_model, bundled_checkpoint, load_model, model_names, read_metadata, save_checkpoint
from metricattack.models.precision import AMP_DTYPES, with_precision
from metricattack.models.checkpoints import checkpoint_paths, training_recipe
from metricattack.models.zoo import zoo_names, zoo_table
from metricattack.report.compare import training_summary, write_compare
from metricattack.report.sanity import status
from metricattack.options import (
    model_reference,
    Parser,
    finite_float,
    integer,
    nonneg_float,
    nonneg_int,
    one_line,
    out_file,
    out_folder,
    positive_float,
    positive_int,
    probability,
    random_seed,
    yaml_only,
)
from metricattack.report.examples import write_examples
from metricattack.report.html import build_report
from metricattack.report.results import text_table, transfer_matrix, write_results
from metricattack.retrieval import evaluate_model, metrics_line
from metricattack.runtime import choose_device, keep_freed_memory, seed_everything
from metricattack.plans import HEADLINE, PLANS, get_plan, resolve_sources, source_groups
from metricattack.inputs import main_reference
from metricattack.robustness import sanity_checks
from metricattack.sweep import CHUNKS_FOLDER, base_record, check_against_data, check_out_dir, run_sweep, safe_name, settings_from_config
from metricattack.training.loop import CHECKPOINT_NAME, TrainConfig, train_model


# --- shared option groups ------------------------------------------------------------------
def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command shares."""
    parser.add_argument("--config", help="YAML file of options (command-line options override it)")
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")
    parser.add_argument("--workers", type=nonneg_int, default=0, help="image-reading worker processes (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_precision(parser: argparse.ArgumentParser) -> None:
    """Mixed precision and memory format of the models' passes (for GPUs; off by default)."""
    parser.add_argument("--amp", default="off", choices=tuple(AMP_DTYPES),
                        help="autocast the models' forward and backward passes to bfloat16 / float16 (default off)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last (NHWC) memory format for the models")


def add_chunks(parser: argparse.ArgumentParser) -> None:
    """How a campaign cuts its work: images per stored chunk (the unit of resume and of torchrun sharing)."""
    parser.add_argument("--chunk-size", type=positive_int, default=1024,
                        help="images per chunk: attacked images are stored and resumed, and clean images read, a chunk at a time (default 1024)")


def add_data(parser: argparse.ArgumentParser) -> None:
    """Which data set to read."""
    parser.add_argument("--dataset", help="market1501, dukemtmc, msmt17, cuhk03-detected, cuhk03-labeled, folder "
                        "(default: the bundled synthetic data)")
    parser.add_argument("--data-root", help="folder holding the data set")
    parser.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"), help="resize images on load")


def add_model(parser: argparse.ArgumentParser) -> None:
    """Which model to load."""
    parser.add_argument("--model", help=f"architecture ({', '.join(model_names())}), torchreid:NAME, python:PACKAGE.MODULE:FACTORY, "
                        "torchscript:FILE or fastreid:FILE; default: the bundled model")
    parser.add_argument("--weights", help="checkpoint: ours (.safetensors + .json) or torchreid / paper code (.pth)")
    parser.add_argument("--weights-format", default="auto", choices=FORMAT_NAMES, help="foreign checkpoint layout")
    parser.add_argument("--input-size", type=positive_int, nargs=2, metavar=("H", "W"), help="the model's input size (default: the model's own)")
    parser.add_argument("--mean", type=finite_float, nargs=3, metavar=("R", "G", "B"), help="input normalisation mean, images in [0,1]")
    parser.add_argument("--std", type=positive_float, nargs=3, metavar=("R", "G", "B"), help="input normalisation std")
    parser.add_argument("--distance", choices=DISTANCE_METRICS, help="distance the model is evaluated with")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, help="L2-normalise features before the distance")


def add_pipeline(parser: argparse.ArgumentParser, several: bool) -> None:
    """What the deployed system does after the model; ``several``: also evaluate under other pipelines."""
    parser.add_argument("--flip", action="store_true",
                        help="average features of each image and its mirror (the attack differentiates through it)")
    parser.add_argument("--query-expansion", type=nonneg_int, default=0, metavar="N",
                        help="average query expansion over the top N gallery images (default 0: none)")
    parser.add_argument("--rerank", action="store_true",
                        help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3) of the final distances")
    if several:
        parser.add_argument("--pipelines", nargs="+", metavar="PIPELINE",
                            help="also evaluate the attacked images under these pipelines, a row each: plain, or "
                                 "flip, qeN, rerank joined by + (e.g. plain rerank flip+qe5+rerank)")


def add_attack(parser: argparse.ArgumentParser, single: bool) -> None:
    """Attack options: one setting (``attack``) or a sweep (``run``)."""
    parser.add_argument("--target-model", action="append", default=[], type=model_reference, metavar="MODEL",
                        help="also evaluate the adversarial images on this model (default, a checkpoint, or ARCH:PATH); repeatable")
    parser.add_argument("--no-quantize", action="store_true", help="evaluate adversarial images without 8-bit rounding")
    parser.add_argument("--save-images", metavar="DIR", type=out_folder, help="write adversarial images as PNGs in the data set's layout")
    parser.add_argument("--ap", default="standard", choices=("standard", "trapezoid"), help="AP definition")
    parser.add_argument("--examples", type=nonneg_int, default=3, help="ranking lists saved per setting for the report")
    if single:
        parser.add_argument("--attack", default="ifgsm", help=f"one of {', '.join([*ATTACKS, *CAMPAIGN_ATTACKS])}")
        parser.add_argument("--eps", type=finite_float, default=5.0, help="perturbation size in pixels out of 255 (default 5)")
        parser.add_argument("--steps", type=nonneg_int, help="iterations, or the query budget of blackbox (default: the paper's min(eps+4, 1.25 eps))")
        parser.add_argument("--step-size", type=finite_float, help="step size in pixels out of 255 (default 1)")
        parser.add_argument("--norm", default="linf", help="linf or l2")
        parser.add_argument("--side", default="gallery", help=f"one of {', '.join(SIDES)}")
        parser.add_argument("--goal", default="untargeted", help=f"one of {', '.join(GOALS)}")
        parser.add_argument("--target-pid", type=integer, help="targeted: the identity to pull toward (default random)")
        parser.add_argument("--restarts", type=positive_int, help="pgd: random restarts, the best per image kept (default 1)")
        parser.add_argument("--attack-distance", default="sqeuclidean",
                            help=f"distance the attack objective uses: {', '.join(DISTANCE_METRICS)} (default sqeuclidean, the paper's)")
        parser.add_argument("--schedule", default="paper",
                            help=f"ifgsm/mifgsm: {' or '.join(SCHEDULES)} (paper: the paper's loop; fast: decaying steps, early stopping)")
        parser.add_argument("--source-model", action="append", default=[], type=model_reference, metavar="MODEL",
                            help="model that makes the images; several form an averaged-loss ensemble (default: --model/--weights)")
        parser.add_argument("--transfer-each", action="store_true",
                            help="with several --source-model: also attack with each alone (rows of a transfer matrix)")
        parser.add_argument("--out", type=out_folder, help="write results.json/.csv/.md and the report here")
    else:
        parser.add_argument("--settings", type=yaml_only, help=argparse.SUPPRESS)  # a list of settings, from --config only
        parser.add_argument("--plan", default="default",
                            help="named sweep: " + "; ".join(f"{p.name}: {p.description}" for p in PLANS.values()))
        parser.add_argument("--out", type=out_folder, help="run folder (default runs/<timestamp>)")
        parser.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished settings")
        parser.add_argument("--subset", type=positive_int, metavar="N", help="only the queries of N query identities drawn with --seed")
        parser.add_argument("--sanity-checks", action="store_true", help="also run the robust evaluation's sanity checks "
                            "(on with --plan robust)")
        parser.add_argument("--zoo-model", action="append", default=[], metavar="NAME",
                            help="zoo models to transfer between, instead of the plan's (repeatable)")


def add_defense(parser: argparse.ArgumentParser) -> None:
    """Training options of a defense (``metricattack train --defense NAME``)."""
    parser.add_argument("--weights", help="start from this checkpoint of ours (or a bundled model: default, default-robust)")
    parser.add_argument("--defense", help=f"adversarial training objective: {', '.join(DEFENSES)}")
    kinds = {"steps": int, "random_start": argparse.BooleanOptionalAction}
    for option in DEFENSE_OPTIONS:
        flag = "--defense-" + option.replace("_", "-")
        if kinds.get(option) is argparse.BooleanOptionalAction:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help="inner attack: start at random in the ball")
        else:
            parser.add_argument(flag, type=kinds.get(option, float), help="see README, Defenses (default per defense)")


def defense_options(args: argparse.Namespace) -> dict:
    """The --defense-* options the user gave (None: the defense's default)."""
    return {o: getattr(args, f"defense_{o}") for o in DEFENSE_OPTIONS if getattr(args, f"defense_{o}") is not None}


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
    reference = main_reference(args)
    model, meta = reference.load()
    model = with_precision(model, args.amp, args.channels_last)
    pipeline = Pipeline(args.flip, args.query_expansion, args.rerank)
    metrics = evaluate_model(model.to(device), data, device, args.batch_size, args.flip, args.image_size,
                             args.workers, args.ap, not args.no_progress, args.query_expansion, args.rerank,
                             name=reference.display_name)
    spec = model.spec
    print(data.summary())
    print(f"model {spec.arch} ({args.weights or ('bundled default' if args.model is None else 'random weights')}), "
          f"distance {spec.metric}{' on L2-normalised features' if spec.normalize else ''}")
    print(f"pipeline {pipeline.name}")
    print(metrics_line(metrics))
    if args.json:
        atomic_write_text(args.json, json.dumps({"dataset": data.name, "model": meta.get("spec"), "pipeline": pipeline.as_dict(),
                                                 **metrics.as_dict()}, indent=2) + "\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """metricattack train: train a model, checkpoint every epoch, evaluate at the end."""
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    out_dir = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out_dir)  # named by the resume hint if interrupted
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder for checkpoints)")
    options = {"embedding_dim": args.embedding_dim}
    if args.input_size:
        options["input_size"] = tuple(args.input_size)
    if args.last_stride is not None:
        options["last_stride"] = args.last_stride
    defense = build_defense(args.defense, **defense_options(args)) if args.defense else None
    if defense is None and defense_options(args):
        given = ", ".join("--defense-" + o.replace("_", "-") for o in sorted(defense_options(args)))
        raise InputError(f"{given}: defense options need --defense NAME")
    metadata = {"dataset": data.name, "train_command": args.command}
    if args.weights:  # fine-tune a trained model (ours, or the bundled ones by name)
        model, init_meta = load_model(args.model, bundled_checkpoint(args.weights) or args.weights)
        metadata.update(init_weights=args.weights, init_recipe=training_recipe(init_meta))
    else:
        model = build_model(args.model, num_classes=data.num_train_pids, **options)
    if defense is not None:
        model = defense.prepare_model(model, from_weights=bool(args.weights))
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "milestones"},
                         milestones=tuple(args.milestones))
    if defense is not None:
        metadata.update(defense=defense.settings())
    started, cpu_started = time.perf_counter(), time.process_time()
    train_model(model, data.train, config, out_dir, device, resume=args.resume, image_size=args.image_size,
                workers=args.workers, progress=not args.no_progress, metadata=metadata, objective=defense)
    # CPU seconds compare defenses fairly on a shared machine; wall seconds are what the user waits.
    metadata.update(train_seconds=round(time.perf_counter() - started, 1), train_cpu_seconds=round(time.process_time() - cpu_started, 1))
    metrics = evaluate_model(model, data, device, args.batch_size, image_size=args.image_size, workers=args.workers,
                             progress=False)
    path = save_checkpoint(out_dir / CHECKPOINT_NAME, model, epoch=config.epochs, train_config=asdict(config),
                           clean_metrics=metrics.as_dict(), **metadata)
    print(metrics_line(metrics))
    print(f"wrote {path}")
    return 0


def build_campaign(args: argparse.Namespace, sources: list[NamedModel], targets: list[NamedModel]) -> Campaign:
    """A campaign on the data the options name."""
    device = distributed.start(choose_device(args.device))  # under torchrun: join the group, take this rank's GPU
    seed_everything(args.seed)
    pipelines = pipelines_from_options(args.flip, args.query_expansion, args.rerank, args.pipelines)  # checked before reading data
    data = load_data(args.dataset, args.data_root, not args.no_progress)
    if getattr(args, "subset", None) is not None:
        data = subset_query_identities(data, args.subset, args.seed)
    return Campaign(data, sources, targets, device, batch_size=args.batch_size, seed=args.seed,
                    quantize_images=not args.no_quantize, average_precision=args.ap,
                    image_size=args.image_size, workers=args.workers, progress=not args.no_progress,
                    pipelines=pipelines, chunk_size=args.chunk_size, amp=args.amp, channels_last=args.channels_last)


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
    print(f"results in {out_dir}/results.json, results.csv, results.md")
    print(f"report: {build_report(out_dir)}")


def cmd_run(args: argparse.Namespace) -> int:
    """metricattack run: the sweep of settings on one model, with result files and the report."""
    plan = get_plan(args.plan)
    attack_options = build_parser()[1]["attack"]  # a YAML setting's values get the checks of `attack`'s options
    settings = settings_from_config(args.settings, attack_options) if args.settings is not None else list(plan.settings)
    zoo = [model_from_reference(f"zoo:{name}", progress=not args.no_progress) for name in args.zoo_model or plan.models]
    victim = zoo[0] if zoo else main_model(args)
    targets = unique_names((zoo or [victim]) + [model_from_reference(r) for r in args.target_model])
    out_dir = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out_dir)  # named by the resume hint if interrupted
    distributed.start(choose_device(args.device))  # under torchrun the first process checks and writes the folder
    if distributed.is_main():
        check_out_dir(out_dir, args.resume)
    settings, sources, dropped = resolve_sources(settings, victim, model_from_reference)
    if dropped and distributed.is_main():
        print(f"skipped {len(dropped)} transfer settings: their source is the model under test")
    campaign = build_campaign(args, [victim], targets)
    training = {"training": {victim.name: training_summary({} if zoo else main_metadata(args))}}
    record = run_sweep(campaign, settings, out_dir, args.command, resume=args.resume, save_images=args.save_images,
                       examples=args.examples, models=sources, extra=training,
                       source_groups=source_groups(zoo) if zoo else None)
    if args.sanity_checks or plan.sanity_checks:  # on the model as deployed: precision, flip averaging
        record["sanity"] = sanity_checks(campaign, record, campaign.sources[0], HEADLINE.key)
        if distributed.is_main():
            write_results(out_dir, record)
            for check in record["sanity"]["checks"]:
                print(f"sanity check {check['name']}: {status(check)}: {check['summary']}")
    finish_run(record, out_dir)
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """metricattack attack: one setting, from source model(s) to target model(s)."""
    setting = AttackSetting(args.attack, args.eps, args.side, args.goal, args.norm, args.steps, args.step_size, args.target_pid,
                            args.restarts, args.attack_distance, args.schedule)
    setting.validate()
    sources = unique_names([model_from_reference(r) for r in args.source_model]) or [main_model(args)]
    targets = unique_names(sources + [model_from_reference(r) for r in args.target_model])
    out_dir = Path(args.out) if args.out else None
    distributed.start(choose_device(args.device))  # under torchrun every process attacks its share; the first one writes
    main = distributed.is_main()
    if out_dir is not None and main:
        check_out_dir(out_dir, resume=False)
    campaign = build_campaign(args, sources, targets)
    sources = campaign.sources  # as the campaign deploys them (with flip averaging when asked)
    groups = [sources] + ([[s] for s in sources] if args.transfer_each and len(sources) > 1 else [])
    check_against_data(campaign, [setting])
    record = base_record(campaign, args.command)
    try:
        for group in groups:
            source = "+".join(named.name for named in group)  # with --out the attacked images go to disk, a chunk at a time
            folder = None if out_dir is None else out_dir / CHUNKS_FOLDER / safe_name(source)
            outcome, rows = campaign.run(setting, sources=group, folder=folder)
            record["results"] += [{"key": setting.key, **row} for row in rows]
            if group is sources and out_dir is not None and args.examples and main:
                record["examples"][setting.key] = write_examples(campaign, outcome, out_dir, args.examples)
            if group is sources and args.save_images and main:
                print(f"wrote adversarial images under {save_adversarial_images(campaign, outcome, args.save_images)}")
            distributed.barrier()  # every process is done with the chunks
    finally:  # `attack` does not resume: its chunks never outlive it
        if out_dir is not None and main:
            shutil.rmtree(out_dir / CHUNKS_FOLDER, ignore_errors=True)
    if not main:
        return 0
    print(text_table(record), end="")
    if len(targets) > 1:
        print(transfer_matrix(record), end="")
    if out_dir is not None:
        write_results(out_dir, record)
        print(f"results in {out_dir}/results.json, results.csv, results.md")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """metricattack compare: several runs side by side (HTML page, Markdown and CSV tables)."""
    out_dir = Path(args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"comparison: {write_compare(args.run_dirs, out_dir)} (and compare.md, compare.csv)")
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
    try:
        print(f"report: {build_report(Path(args.run_dir))}")
    except InputError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:  # a record edited by hand
        raise InputError(f"{Path(args.run_dir) / 'results.json'}: not a results record metricattack wrote "
                         f"({exc.__class__.__name__}: {exc})") from None  # fmt: skip
    return 0


# --- parser and entry point ------------------------------------------------------------------
TRAIN_CHECKS = {
    "epochs": positive_int, "num_instances": positive_int, "warmup_epochs": nonneg_int, "lr": positive_float,
    "weight_decay": nonneg_float, "gamma": positive_float, "margin": nonneg_float, "label_smoothing": probability,
    "erase_p": probability,
}  # fmt: skip


def resume_hint(argv: list[str], args: argparse.Namespace) -> str:
    """For an interrupted run or training: the command that continues it (what finished is already saved)."""
    if getattr(args, "func", None) not in (cmd_run, cmd_train) or not getattr(args, "out", None):
        return ""
    extra = ([] if "--out" in argv else ["--out", args.out]) + ([] if "--resume" in argv else ["--resume"])
    what = "settings and chunks" if args.func is cmd_run else "epochs"
    return f"; the finished {what} are saved in {args.out}: continue with: metricattack {shlex.join(argv + extra)}"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each subcommand's parser (``--config`` re-parses with the latter)."""
    parser = Parser(prog="metricattack", description="Adversarial metric attacks on person re-identification.")
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
    p.add_argument("--out", required=True, type=out_folder, help="folder to write (must not exist or be empty)")
    for name in ("train_ids", "test_ids", "cameras", "height", "width"):
        p.add_argument(f"--{name.replace('_', '-')}", type=positive_int, default=getattr(defaults, name))
    p.add_argument("--contact-sheet", metavar="PNG", type=out_file, help="also write a contact sheet (8 ids x cameras)")

    p = subcommand("evaluate", cmd_evaluate, "clean retrieval metrics of a model on a data set", add_common, add_precision, add_data, add_model,
                   lambda p: add_pipeline(p, several=False))  # fmt: skip
    p.add_argument("--ap", default="standard", choices=("standard", "trapezoid"), help="AP definition")
    p.add_argument("--json", type=out_file, help="also write the metrics to this JSON file")

    p = subcommand("train", cmd_train, "train a re-ID model", add_common, add_data)
    train_defaults = TrainConfig()
    p.add_argument("--model", default="compact", help=f"architecture ({', '.join(model_names())})")
    p.add_argument("--embedding-dim", type=positive_int, help="add a linear embedding of this size before the BNNeck")
    p.add_argument("--input-size", type=positive_int, nargs=2, metavar=("H", "W"), help="model input size (default per model)")
    p.add_argument("--last-stride", type=int, choices=(1, 2), help="ResNet: stride of the last stage (default 1)")
    for f in fields(TrainConfig):
        if f.name in ("seed", "batch_size", "milestones", "flip"):
            continue
        default = getattr(train_defaults, f.name)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=TRAIN_CHECKS.get(f.name, type(default)), default=default,
                       help=f"default {default}")  # fmt: skip
    p.add_argument("--milestones", type=positive_int, nargs="*", default=list(train_defaults.milestones), help="epochs for step decay")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flip")
    p.add_argument("--out", type=out_folder, help="folder for checkpoints (default runs/train-<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch saved in --out")
    add_defense(p)

    subcommand("attack", cmd_attack, "run one attack setting (white-box or transfer)",
               add_common, add_chunks, add_precision, add_data, add_model, lambda p: add_attack(p, single=True), lambda p: add_pipeline(p, several=True))  # fmt: skip
    subcommand("run", cmd_run, "the main job: clean evaluation and the standard attack sweep, with a report",
               add_common, add_chunks, add_precision, add_data, add_model, lambda p: add_attack(p, single=False), lambda p: add_pipeline(p, several=True))  # fmt: skip
    p = subcommand("zoo", cmd_zoo, "the model zoo: train missing models (cached), list clean metrics", add_common)
    p.add_argument("names", nargs="*", help=f"zoo models (default all: {', '.join(zoo_names())})")
    p.add_argument("--list", action="store_true", help="only list, train nothing")
    p = subcommand("report", cmd_report, "rebuild a run's report.html from its results.json")
    p.add_argument("run_dir", help="a folder written by metricattack run")
    p = subcommand("compare", cmd_compare, "compare the models of several runs (clean, robust, cost, sanity checks)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by metricattack run")
    p.add_argument("--out", help="folder for compare.html, compare.md, compare.csv (default runs/compare-<timestamp>)")
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 on bad input (one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()
    try:
        with sigterm_raises():
            args = apply_config(subparsers[args.command_name], argv[1:], args) if args.command_name in subparsers else args
            args.command = "metricattack " + " ".join(shlex.quote(a) for a in argv)
            return args.func(args)
    except InputError as exc:
        print(f"metricattack: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user named that the system refused (permissions, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"metricattack: error: {one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"metricattack: interrupted{one_line(resume_hint(argv, args))}", file=sys.stderr)
        return interrupt_exit_code(exc)
    finally:
        distributed.stop()


if __name__ == "__main__":
    sys.exit(main())
