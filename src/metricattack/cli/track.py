"""``metricattack track``: a multi-object tracker with a re-ID model on a sequence, clean, with motion only,
and attacked online by perturbing the pixels inside detection boxes (``metricattack.tracking``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from metricattack.attacks.steps import STEP_RULES
from metricattack.cli.checks import finite_float, model_reference, positive_int
from metricattack.cli.options import add_common, add_model, add_out, add_resume
from metricattack.cli.wiring import choose_device_once, load_reference, main_reference
from metricattack.system.runtime import seed_everything
from metricattack.tracking.association import LOSSES
from metricattack.tracking.embedding import CropEmbedder
from metricattack.tracking.inputs import DETECTORS, describe, load_sequence, parse_pairs
from metricattack.tracking.results import text_table
from metricattack.tracking.run import TrackingJob, run_tracking
from metricattack.tracking.setting import DEFAULT_PLAN, TrackSetting
from metricattack.video.registry import TRACKERS, build_tracker

NAME = "track"
HELP = "attack a multi-object tracker's re-ID features on a video (default: the bundled scene and plan)"
RESUMES = "settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    add_common(parser)
    add_model(parser)
    add_out(parser, "run folder (default runs/track-<timestamp>)")
    add_resume(parser, "continue the run in --out, skipping finished settings")
    parser.add_argument("--sequence", help="a video file, a folder of frames or a MOTChallenge sequence folder (default: the bundled scene)")
    parser.add_argument("--scene-seed", type=int, metavar="N",
                        help="instead of the bundled scene (seed 0), the scene its generator draws from seed N (rendered once, cached)")
    parser.add_argument("--detections", help="a det.txt (MOTChallenge) to use instead of the sequence's own")
    parser.add_argument("--detector", default="auto", choices=DETECTORS,
                        help="auto: the sequence's det.txt if it has one, else HOG; file: a det.txt only; hog: OpenCV's HOG "
                             "people detector (cached per video)")
    parser.add_argument("--frames", type=positive_int, metavar="N", help="track only the first N frames")
    parser.add_argument("--tracker", default="deepsort", choices=sorted(TRACKERS),
                        help="deepsort (deep-sort-realtime, default); strongsort, botsort, deepocsort need metricattack[boxmot]")
    parser.add_argument("--goal", choices=("motion-only", "untargeted", "switch"),
                        help="one setting after the clean run instead of the default plan (clean, motion-only, "
                             "untargeted I-FGSM eps 8 on every frame, switch with 10 frames per pair)")
    parser.add_argument("--attack", default="ifgsm", choices=tuple(STEP_RULES), help="step rule (default ifgsm)")
    parser.add_argument("--eps", type=finite_float, default=8.0, help="perturbation size in pixels out of 255 of the frame (default 8)")
    parser.add_argument("--steps", type=positive_int, help="iterations per attacked frame (default: the plan's, 20)")
    parser.add_argument("--attack-loss", default="neighbour", choices=LOSSES,
                        help="untargeted objective: neighbour (default), paper, margin")
    parser.add_argument("--budget", default="every", help="frames attacked: every, every:N or crossings (default every)")
    parser.add_argument("--frames-per-pair", type=positive_int, default=10, help="frames attacked per crossing pair (default 10)")
    parser.add_argument("--pairs", nargs="+", metavar="A,B",
                        help="switch these identity pairs (ground-truth ids, or clean track ids without ground truth) "
                             "instead of the crossing pairs found")
    parser.add_argument("--source-model", type=model_reference, metavar="MODEL",
                        help="transfer: the attacker uses this model and a mirror tracker, not the tracker's own model")
    parser.add_argument("--no-video", action="store_true", help="write no side-by-side video")


def plan_of(args: argparse.Namespace) -> list[TrackSetting]:
    """The settings to run (checked here, before any work)."""
    if args.goal is None:
        return [setting if args.source_model is None else TrackSetting(**{**setting.to_dict(), "source": args.source_model})
                if setting.attacks else setting for setting in DEFAULT_PLAN]  # fmt: skip
    steps = args.steps or 20
    return [TrackSetting("motion-only")] if args.goal == "motion-only" else [
        TrackSetting(args.goal, args.attack, args.eps, steps, args.attack_loss, args.budget, args.frames_per_pair, args.source_model)
    ]


def run(args: argparse.Namespace) -> int:
    """Track, attack, score; print the table and write the run folder."""
    settings = plan_of(args)
    pairs = parse_pairs(args.pairs)
    build_tracker(args.tracker)  # its library is installed: one line before any work, not after the detections
    progress = not args.no_progress
    device = choose_device_once(args)
    seed_everything(args.seed)
    reference = main_reference(args)
    model, _ = reference.load()
    embedder = CropEmbedder(model, model.spec.input_size, device, reference.display_name)
    sources = {}
    if args.source_model is not None:
        source = load_reference(args.source_model, device, args).model
        sources[args.source_model] = CropEmbedder(source, source.spec.input_size, device, args.source_model)
    sequence = load_sequence(args.sequence, args.detections, args.detector, args.frames, progress, args.scene_seed)
    out_dir = Path(args.out or f"runs/track-{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out_dir)
    print(describe(sequence))
    job = TrackingJob(sequence, sequence.detections, args.tracker, embedder, reference.display_name, sources,
                      pairs=pairs, seed=args.seed, progress=progress, video=not args.no_video)  # fmt: skip
    record = run_tracking(job, settings, out_dir, args.resume)
    print(text_table(record["results"]), end="")
    print(f"results in {out_dir}/results.json, results.csv, results.md; tracks in {out_dir}/tracks/")
    print(f"report: {out_dir}/report.html")
    return 0
