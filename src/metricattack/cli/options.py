"""The shared option groups: each option is declared once, here, with its check from ``checks``."""

from __future__ import annotations

import argparse

from metricattack.attacks.steps import SCHEDULES
from metricattack.cli.checks import (
    finite_float,
    integer,
    model_reference,
    nonneg_int,
    out_folder,
    positive_float,
    positive_int,
    random_seed,
)
from metricattack.defenses import DEFENSE_OPTIONS, DEFENSES
from metricattack.evaluation.distance import DISTANCE_METRICS
from metricattack.experiment.registry import ATTACKS
from metricattack.experiment.setting import ATTACK_LOSSES, GOALS, SIDES
from metricattack.models import FORMAT_NAMES, model_names
from metricattack.models.precision import AMP_DTYPES

MODEL_FORMS = "default, default-robust, a checkpoint, ARCH:PATH, torchreid:NAME, timm:NAME, python:PACKAGE.MODULE:FACTORY, torchscript:FILE, fastreid:FILE, onnx:FILE, zoo:NAME"


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command shares."""
    parser.add_argument("--config", help="YAML file of options (command-line options override it)")
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")
    parser.add_argument("--workers", type=nonneg_int, default=0, help="image-reading worker processes (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_out(parser: argparse.ArgumentParser, help_text: str, required: bool = False) -> None:
    """Where the command writes: a folder that can be written in or created."""
    parser.add_argument("--out", required=required, type=out_folder, help=help_text)


def add_resume(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Continue the work already saved in --out."""
    parser.add_argument("--resume", action="store_true", help=help_text)


def add_precision(parser: argparse.ArgumentParser) -> None:
    """Mixed precision and memory format of the models' passes (for GPUs; off by default)."""
    parser.add_argument("--amp", default="off", choices=tuple(AMP_DTYPES),
                        help="autocast the models' forward and backward passes to bfloat16 / float16 (default off)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last (NHWC) memory format for the models")


def add_chunks(parser: argparse.ArgumentParser) -> None:
    """How a campaign cuts its work: images per stored chunk (the unit of resume and of torchrun sharing)."""
    parser.add_argument("--chunk-size", type=positive_int, default=1024,
                        help="images per chunk, rounded up to whole batches: attacked images are stored and resumed, and clean images "
                             "read, a chunk at a time (default 1024)")


def add_data(parser: argparse.ArgumentParser) -> None:
    """Which data set to read."""
    parser.add_argument("--dataset", help="market1501, dukemtmc, msmt17, cuhk03-detected, cuhk03-labeled, folder "
                        "(default: the bundled synthetic data)")
    parser.add_argument("--data-root", help="folder holding the data set")
    parser.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"), help="resize images on load")


def add_model(parser: argparse.ArgumentParser, trainable: bool = False) -> None:
    """Which model to load; ``trainable``: an architecture of ours to train (``train``)."""
    if trainable:
        parser.add_argument("--model", default="compact", help=f"architecture ({', '.join(model_names())})")
        parser.add_argument("--input-size", type=positive_int, nargs=2, metavar=("H", "W"), help="model input size (default per model)")
        return
    parser.add_argument("--model", help=f"architecture ({', '.join(model_names())}), torchreid:NAME, timm:NAME, python:PACKAGE.MODULE:FACTORY, "
                        "torchscript:FILE, fastreid:FILE or onnx:FILE; default: the bundled model")
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


def add_average_precision(parser: argparse.ArgumentParser) -> None:
    """Which AP definition the metrics use."""
    parser.add_argument("--ap", default="standard", choices=("standard", "trapezoid"), help="AP definition")


def add_attack_outputs(parser: argparse.ArgumentParser) -> None:
    """What an attack command evaluates and writes besides its results."""
    parser.add_argument("--target-model", action="append", default=[], type=model_reference, metavar="MODEL",
                        help=f"also evaluate the adversarial images on this model ({MODEL_FORMS}, or a YAML mapping "
                             "in --config); repeatable")
    parser.add_argument("--no-quantize", action="store_true", help="evaluate adversarial images without 8-bit rounding")
    parser.add_argument("--save-images", metavar="DIR", type=out_folder, help="write adversarial images as PNGs in the data set's layout")
    add_average_precision(parser)
    parser.add_argument("--examples", type=nonneg_int, default=3, help="ranking lists saved per setting for the report")


def add_attack_setting(parser: argparse.ArgumentParser) -> None:
    """One attack setting (``attack``; also the checks of a YAML ``settings`` entry)."""
    parser.add_argument("--attack", default="ifgsm", help=f"one of {', '.join(ATTACKS)}")
    parser.add_argument("--eps", type=finite_float, default=5.0, help="perturbation size in pixels out of 255 (default 5)")
    parser.add_argument("--steps", type=nonneg_int, help="iterations, or the query budget of blackbox (default: the paper's "
                        "min(eps+4, 1.25 eps); pgd 10; apgd 100; auto 25 per stage)")
    parser.add_argument("--step-size", type=finite_float, help="step size in pixels out of 255 (default 1; apgd sets its own)")
    parser.add_argument("--norm", default="linf", help="linf or l2")
    parser.add_argument("--side", default="gallery", help=f"one of {', '.join(SIDES)}")
    parser.add_argument("--goal", default="untargeted", help=f"one of {', '.join(GOALS)}")
    parser.add_argument("--target-pid", type=integer, help="targeted: the identity to pull toward (default random)")
    parser.add_argument("--restarts", type=positive_int, help="pgd, apgd: random restarts, the best per image kept (default 1)")
    parser.add_argument("--attack-distance", default="sqeuclidean",
                        help=f"distance the attack objective uses: {', '.join(DISTANCE_METRICS)} (default sqeuclidean, the paper's)")
    parser.add_argument("--schedule", default="paper",
                        help=f"ifgsm/mifgsm: {' or '.join(SCHEDULES)} (paper: the paper's loop; fast: decaying steps, early stopping)")
    parser.add_argument("--attack-loss", default="paper",
                        help=f"objective of the gradient attacks: {' or '.join(ATTACK_LOSSES)} (paper: the paper's metric loss; "
                             "margin: each true match's distance relative to its 100th nearest impostor, non-targeted)")


def add_defense(parser: argparse.ArgumentParser) -> None:
    """Training options of a defense (``metricattack train --defense NAME``)."""
    parser.add_argument("--weights", help="start from this checkpoint of ours (or a bundled model: default, default-robust)")
    parser.add_argument("--defense", help=f"adversarial training objective: {', '.join(DEFENSES)}")
    checks = {"steps": integer}  # ranges are the defense's own checks (build_defense), which name the option
    for option in DEFENSE_OPTIONS:
        flag = "--defense-" + option.replace("_", "-")
        if option == "random_start":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help="inner attack: start at random in the ball")
        else:
            parser.add_argument(flag, type=checks.get(option, finite_float), help="see docs/defenses.md (default per defense)")


def defense_options(args: argparse.Namespace) -> dict:
    """The --defense-* options the user gave (None: the defense's default)."""
    return {o: getattr(args, f"defense_{o}") for o in DEFENSE_OPTIONS if getattr(args, f"defense_{o}") is not None}
