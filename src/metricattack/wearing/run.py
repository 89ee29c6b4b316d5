"""A wearing run: for each wearer, optimise a print (or take the given one), draw the matched random print,
score the three on re-rendered held-out and seen cameras under the model and the transfer model, and write
the row, the PNGs and the record after each wearer (``resume`` skips the wearers already written)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from metricattack.data.base import ReIDData
from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.texture import AREAS, Texture
from metricattack.errors import InputError
from metricattack.experiment.setting import NamedModel
from metricattack.models.features import FeatureSet
from metricattack.system.lock import folder_lock
from metricattack.wearing.objective import References, WearObjective
from metricattack.wearing.optimise import optimise_pattern
from metricattack.wearing.printing import PRINTABLE, non_printability, random_pattern, total_variation
from metricattack.wearing.renders import REFERENCES, SEEN, UNSEEN, rendered_images, stream_seed
from metricattack.experiment.results import read_kind_record
from metricattack.wearing.results import PRINTS, flatten, summarize, write_results
from metricattack.wearing.scoring import render_features, score_renders
from metricattack.wearing.setting import WearSetting
from metricattack.wearing.visuals import contact_sheet, save_pattern, write_report
from metricattack.wearing.wearers import choose_target, gallery_features, of_identity, without

SHEET = 5  # stream of the contact sheet's renders


@dataclass
class WearRun:
    """Everything a run needs: the data and its renderer settings, the models, the setting, where to write."""

    data: ReIDData
    config: SyntheticConfig
    model: NamedModel
    setting: WearSetting
    out_dir: Path
    wearers: list[int]
    transfer: NamedModel | None = None
    target_pid: int | None = None
    pattern: np.ndarray | None = None  # (h, w, 3) in [0, 1]: score this print instead of optimising one
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 64
    progress: bool = True
    resume: bool = False
    command: str = ""


def identity(run: WearRun) -> dict:
    """What a resumed run must share with the record it continues."""
    return {"setting_key": run.setting.key(), "seed": run.seed, "model": run.model.name,
            "transfer_model": None if run.transfer is None else run.transfer.name,
            "pattern": run.pattern is not None, "target_pid": run.target_pid}  # fmt: skip


def start_record(run: WearRun) -> dict:
    """The record to continue: the one in out_dir with --resume (checked to be this run's), else a new one."""
    found = read_kind_record(run.out_dir, "wearing", "wear")
    if found is not None and not run.resume:
        raise InputError(f"--out {run.out_dir}: already holds a wearing run (continue it with --resume, or choose another --out)")
    if found is not None:
        stored = {key: found.get(key) for key in identity(run)}
        if stored != identity(run):
            changed = sorted(key for key in stored if stored[key] != identity(run)[key])
            raise InputError(f"--resume: {run.out_dir} holds a run with other {', '.join(changed)}; use another --out")
        return found
    return {"kind": "wearing", **identity(run), "setting": run.setting.to_dict(), "data": run.data.name,
            "command": run.command, "results": [], "summary": {}}  # fmt: skip


def run_wear(run: WearRun) -> dict:
    """Run every wearer not in the record yet; returns the record (also written to out_dir)."""
    run.setting.validate(run.config.cameras)
    with folder_lock(run.out_dir):
        record = start_record(run)
        done = {row["pid"] for row in record["results"]}
        models = [run.model] + ([run.transfer] if run.transfer is not None else [])
        galleries = [gallery_features(named.model.to(run.device), run.data, run.device, run.batch_size, run.progress, named.name)
                     for named in models]  # fmt: skip
        for pid in run.wearers:
            if pid in done:
                continue
            record["results"].append(wear_one(run, pid, models, galleries))
            record["summary"] = summarize(record["results"])
            write_results(run.out_dir, record)
            write_report(run.out_dir, record)
        write_results(run.out_dir, record)
        write_report(run.out_dir, record)
    return record


def wear_one(run: WearRun, pid: int, models: list[NamedModel], galleries: list[FeatureSet]) -> dict:
    """One wearer's row: his print (optimised or given), the random print, and their scores."""
    setting, started = run.setting, time.perf_counter()
    model, spec = models[0].model, models[0].model.spec
    target = choose_target(run.data, pid, run.target_pid, run.seed, setting.test_cameras) if setting.goal == "impersonate" else None
    row: dict = {"pid": pid, "goal": setting.goal, "target": target}
    if run.pattern is not None:
        texture = torch.from_numpy(run.pattern).permute(2, 0, 1).float()
    else:
        per_camera = max(1, setting.references // len(setting.train_cameras))
        images, cameras = rendered_images(run.config, pid, None, setting.train_cameras, per_camera, run.seed, REFERENCES)
        others = without(galleries[0], pid) if target is None else without(without(galleries[0], pid), target)
        references = References(render_features(model, images, run.device).to(run.device), cameras.to(run.device),
                                None if target is None else of_identity(galleries[0], target).to(run.device),
                                others.features.to(run.device))  # fmt: skip
        objective = WearObjective(setting.goal, spec.metric, spec.normalize, torch.tensor(PRINTABLE, device=run.device),
                                  setting.tv_weight, setting.print_weight)  # fmt: skip
        optimised = optimise_pattern(model, objective, references, run.config, pid, setting,
                                     stream_seed(run.seed, pid), run.device, run.progress)  # fmt: skip
        texture = optimised.texture
        row |= {"renders": optimised.renders, "gradient_passes": optimised.gradient_passes,
                "final_metric_loss": optimised.history[-1]["metric"]}  # fmt: skip
    optimised_seconds = time.perf_counter() - started
    random = random_pattern(texture, torch.Generator().manual_seed(stream_seed(run.seed, pid, 1)))
    worn = {"clean": None, "pattern": texture, "random": random}
    for prefix, named, gallery, cameras, stream in (
        ("", models[0], galleries[0], setting.test_cameras, UNSEEN),
        ("seen_", models[0], galleries[0], setting.train_cameras, SEEN),
        *((("transfer_", models[1], galleries[1], setting.test_cameras, UNSEEN),) if len(models) > 1 else ()),
    ):
        scores = {name: score_print(run, named, gallery, pid, worn[name], cameras, stream, target) for name in PRINTS}
        row |= flatten(scores, prefix)
    palette = torch.tensor(PRINTABLE)
    row |= {"tv": float(total_variation(texture)), "nps": float(non_printability(texture, palette)),
            "random_tv": float(total_variation(random)), "random_nps": float(non_printability(random, palette)),
            "optimise_seconds": optimised_seconds, "seconds": time.perf_counter() - started}  # fmt: skip
    save_pattern(texture, run.out_dir / f"pattern_{pid}.png")
    save_pattern(random, run.out_dir / f"random_{pid}.png")
    all_cameras = list(range(1, run.config.cameras + 1))
    sheet = {name: rendered_images(run.config, pid, as_texture(worn[name], setting.area), all_cameras, 1, run.seed, SHEET)[0]
             for name in PRINTS}  # fmt: skip
    contact_sheet(sheet, all_cameras, run.out_dir / f"contact_{pid}.png")
    return row


def as_texture(texture: torch.Tensor | None, area: str) -> Texture | None:
    """A (3, h, w) print on ``area`` as the renderer's Texture (None: his own top)."""
    return None if texture is None else Texture(texture.permute(1, 2, 0).numpy(), AREAS[area])


def score_print(
    run: WearRun, named: NamedModel, gallery: FeatureSet, pid: int, texture: torch.Tensor | None,
    cameras: tuple[int, ...], stream: int, target: int | None,
) -> dict[str, float | None]:
    """Scores of ``pid`` wearing ``texture`` in fresh numpy renders through ``cameras`` under ``named``'s model."""
    images, camids = rendered_images(run.config, pid, as_texture(texture, run.setting.area), cameras,
                                     run.setting.eval_renders, run.seed, stream)  # fmt: skip
    spec = named.model.spec
    features = render_features(named.model, images, run.device)
    return score_renders(features, camids, pid, gallery, spec.metric, spec.normalize, target)
