"""A tracking run: the clean tracker first, then each setting of the plan on the same detections, scored
against the ground truth (or, without it, the clean run's own tracks), written after every setting so an
interrupted run resumes with the settings it had not finished."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metricattack.errors import InputError
from metricattack.system.lock import folder_lock
from metricattack.tracking.crossings import find_crossings, kept_apart, match_labels, switched
from metricattack.tracking.embedding import CropEmbedder
from metricattack.tracking.online import TrackingOutcome, run_tracker
from metricattack.tracking.outputs import FrameRecorder, write_report
from metricattack.experiment.results import read_kind_record
from metricattack.tracking.results import write_results
from metricattack.tracking.setting import TrackSetting
from metricattack.video.metrics import tracking_metrics
from metricattack.video.motfiles import FrameBoxes, read_tracks, write_tracks
from metricattack.video.registry import build_tracker
from metricattack.video.sequence import Sequence

CLEAN = TrackSetting("clean")


@dataclass
class TrackingJob:
    """What a run tracks and with what: the sequence and its detections, the tracker, the embedder, and
    the source models of transfer settings by name."""

    sequence: Sequence
    detections: list[FrameBoxes]
    tracker: str
    embedder: CropEmbedder
    model_name: str
    sources: dict[str, CropEmbedder] = field(default_factory=dict)
    tracker_params: dict = field(default_factory=dict)
    pairs: list[tuple[int, int]] | None = None
    seed: int = 0
    steps: int | None = None
    progress: bool = True
    video: bool = True

    def identity(self) -> dict:
        """What must match for ``--resume`` to go on with a run's record."""
        return {"sequence": self.sequence.name, "frames": self.sequence.frame_count, "tracker": self.tracker,
                "tracker_params": self.tracker_params, "model": self.model_name, "seed": self.seed, "steps": self.steps,
                "pairs": None if self.pairs is None else [list(p) for p in self.pairs]}  # fmt: skip

    def make_tracker(self, appearance: bool):
        """A fresh tracker of the job's kind."""
        return build_tracker(self.tracker, appearance=appearance, **self.tracker_params)


def score(job: TrackingJob, setting: TrackSetting, outcome: TrackingOutcome, reference: list[FrameBoxes], crossings) -> dict:
    """A result row: the tracking metrics against ``reference``, the attack's cost, and for switches the pairs."""
    truth = job.sequence.ground_truth
    metrics = tracking_metrics(reference, outcome.tracks, None if truth is None else truth.distractors)
    row = {"setting": setting.key, **setting.to_dict(), **metrics,
           "frames_attacked": outcome.frames_attacked, "boxes_attacked": outcome.boxes_attacked,
           "ssim": float(np.mean(outcome.ssim)) if outcome.ssim else None,
           "gradient_passes": outcome.gradient_passes, "forward_passes": outcome.forward_passes,
           "seconds": outcome.seconds}  # fmt: skip
    if setting.goal == "switch":
        results = [switched(outcome.tracks, reference, crossing) for crossing in crossings]
        row.update(pairs=len(crossings), switched=int(sum(results)),
                   switch_success=float(np.mean(results)) if results else None,
                   crossings=[{**c.to_dict(), "switched": r} for c, r in zip(crossings, results)])  # fmt: skip
    return row


def run_tracking(job: TrackingJob, settings: list[TrackSetting], out_dir: Path, resume: bool = False) -> dict:
    """Run ``settings`` (the clean run is always first) into ``out_dir``; the record written."""
    out_dir = Path(out_dir)
    with folder_lock(out_dir):
        record = read_kind_record(out_dir, "tracking", "track") if resume else None
        if record is not None and record.get("identity") != job.identity():
            raise InputError(f"--resume: {out_dir} holds a run of another sequence, tracker, model or seed ({record.get('identity')})")
        if record is None and not resume and (out_dir / "results.json").exists():
            raise InputError(f"--out {out_dir}: holds a run already (use --resume, or another folder)")
        truth = job.sequence.ground_truth
        record = record or {"kind": "tracking", "identity": job.identity(), "sequence": job.sequence.name,
                            "against": "ground truth" if truth is not None else "the clean run's tracks", "results": []}  # fmt: skip
        tracks_dir = out_dir / "tracks"
        clean_file = tracks_dir / "clean.txt"
        if clean_file.is_file() and any(row["setting"] == CLEAN.key for row in record["results"]):
            clean = read_tracks(clean_file, job.sequence.frame_count) if clean_file.stat().st_size else [FrameBoxes.empty()] * job.sequence.frame_count
        else:
            outcome = run_tracker(job.sequence, job.detections, job.make_tracker, job.embedder, CLEAN,
                                  seed=job.seed, progress=job.progress)  # fmt: skip
            clean = outcome.tracks
            write_tracks(clean_file, clean)
            reference = truth.frames if truth is not None else clean
            record["results"] = [score(job, CLEAN, outcome, reference, [])]
            write_results(out_dir, record)
        reference = truth.frames if truth is not None else clean
        detected = [set(match_labels(frame.boxes, labels).tolist()) - {-1} for frame, labels in zip(job.detections, reference)]
        done = {row["setting"] for row in record["results"]}
        for setting in settings:
            if setting.key in done:
                continue
            found = find_crossings(reference, setting.frames_per_pair, pairs=job.pairs, detected=detected)
            crossings = [crossing for crossing in found if kept_apart(clean, reference, crossing)]
            source = None if setting.source is None else job.sources[setting.source]
            recorder = FrameRecorder(out_dir, setting.key, job.sequence.fps, clean, crossings) if setting.attacks and job.video else None
            try:
                outcome = run_tracker(job.sequence, job.detections, job.make_tracker, job.embedder, setting, crossings, reference,
                                      source, job.seed, job.steps, job.progress, None if recorder is None else recorder.add)  # fmt: skip
            except BaseException:
                if recorder is not None:
                    recorder.close(finished=False)
                raise
            if recorder is not None:
                recorder.close()
            write_tracks(tracks_dir / f"{setting.key}.txt", outcome.tracks)
            record["results"].append(score(job, setting, outcome, reference, crossings))
            write_results(out_dir, record)
        write_report(out_dir, record, reference, clean, tracks_dir, job.sequence.frame_count)
    return record
