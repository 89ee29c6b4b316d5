"""``metricattack train``: train a re-ID model (with a defense's objective when asked)."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, fields
from pathlib import Path

from metricattack.cli.checks import integer, nonneg_float, nonneg_int, positive_float, positive_int, probability
from metricattack.cli.options import add_common, add_data, add_defense, add_model, add_out, add_resume, defense_options
from metricattack.defenses import build_defense
from metricattack.errors import InputError
from metricattack.experiment.inputs import load_data
from metricattack.models import build_model, bundled_checkpoint, load_model, save_checkpoint
from metricattack.models.checkpoints import training_recipe
from metricattack.models.retrieval import evaluate_model, metrics_line
from metricattack.models.zoo import ZooEntry
from metricattack.system.lock import check_unlocked, folder_lock
from metricattack.system.runtime import choose_device, seed_everything
from metricattack.training.loop import CHECKPOINT_NAME, TrainConfig, train_model

NAME = "train"
HELP = "train a re-ID model"
RESUMES = "epochs"  # what an interrupted training has saved (the resume hint)
TRAIN_CHECKS = {
    "epochs": positive_int, "num_instances": positive_int, "warmup_epochs": nonneg_int, "lr": positive_float,
    "weight_decay": nonneg_float, "gamma": positive_float, "margin": nonneg_float, "label_smoothing": probability,
    "erase_p": probability,
}  # fmt: skip


def train_command(entry: ZooEntry) -> str:
    """The ``metricattack train`` command that reproduces a zoo model."""
    parts = ["metricattack train", f"--model {entry.arch}"]
    if "input_size" in entry.model_options:
        parts.append("--input-size {} {}".format(*entry.model_options["input_size"]))
    if "last_stride" in entry.model_options:
        parts.append(f"--last-stride {entry.model_options['last_stride']}")
    parts += [f"--{key.replace('_', '-')} {value}" for key, value in entry.train_options.items()]
    return " ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options: the architecture, TrainConfig's fields, the defense."""
    add_common(parser)
    add_data(parser)
    add_model(parser, trainable=True)
    parser.add_argument("--embedding-dim", type=positive_int, help="add a linear embedding of this size before the BNNeck")
    parser.add_argument("--last-stride", type=integer, choices=(1, 2), help="ResNet: stride of the last stage (default 1)")
    train_defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in ("seed", "batch_size", "milestones", "flip"):
            continue
        default = getattr(train_defaults, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=TRAIN_CHECKS.get(f.name, type(default)), default=default,
                            help=f"default {default}")  # fmt: skip
    parser.add_argument("--milestones", type=positive_int, nargs="*", default=list(train_defaults.milestones), help="epochs for step decay")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flip")
    add_out(parser, "folder for checkpoints (default runs/train-<timestamp>)")
    add_resume(parser, "continue from the last epoch saved in --out")
    add_defense(parser)


def run(args: argparse.Namespace) -> int:
    """Train, checkpoint every epoch, evaluate at the end."""
    out_dir = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out_dir)  # named by the resume hint if interrupted
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder for checkpoints)")
    check_unlocked(out_dir)  # another training writing there is refused before any work
    device = choose_device(args.device)
    seed_everything(args.seed)
    data = load_data(args.dataset, args.data_root, not args.no_progress)
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
    with folder_lock(out_dir):  # one process writes the checkpoints at a time
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
