"""Who wears the print and whom he impersonates: the synthetic data's renderer settings, its test
identities, the wearers and targets, and the gallery a wearer's images are ranked against."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metricattack.data.base import ReIDData
from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.config import RENDER_VERSION
from metricattack.errors import InputError
from metricattack.models.features import FeatureSet, extract_features


def synthetic_config(root: Path) -> SyntheticConfig:
    """The renderer settings of a synthetic tree (its ``synthetic.json``): the wearer is re-rendered with them."""
    path = Path(root) / "synthetic.json"
    if not path.is_file():
        raise InputError(f"{root}: not a synthetic data set (no synthetic.json; expected a tree written by metricattack synth)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("render_version") != RENDER_VERSION:
        raise InputError(f"{path}: rendered by another renderer version (expected render_version {RENDER_VERSION}); "
                         "render the data again with metricattack synth")
    names = {f.name for f in fields(SyntheticConfig)}
    return SyntheticConfig(**{key: value for key, value in info.items() if key in names})


def test_identities(data: ReIDData) -> list[int]:
    """The identities with query images (the test identities), in pid order."""
    return sorted({sample.pid for sample in data.query if sample.pid > 0})


def choose_wearers(data: ReIDData, pid: int | None, count: int) -> list[int]:
    """``[pid]`` (checked to be a test identity), or the first ``count`` test identities."""
    known = test_identities(data)
    if pid is not None:
        if pid not in known:
            raise InputError(f"--pid {pid}: not a test identity of {data.name} (expected one of {known[0]}..{known[-1]})")
        return [pid]
    if not 1 <= count <= len(known):
        raise InputError(f"--identities: expected from 1 to {len(known)} (the test identities), got {count}")
    return known[:count]


def choose_target(data: ReIDData, wearer: int, target_pid: int | None, seed: int, cameras: Sequence[int]) -> int:
    """The identity ``wearer`` impersonates: ``target_pid`` (a test identity other than the wearer with gallery
    images in the 1-based held-out ``cameras``), or one drawn for him from (seed, wearer)."""
    seen = {s.pid for s in data.gallery if s.pid > 0 and s.camid + 1 in cameras}
    candidates = sorted(seen & set(test_identities(data)))
    if target_pid is not None:
        if target_pid == wearer or target_pid not in candidates:
            raise InputError(f"--target-pid {target_pid}: expected a test identity other than the wearer {wearer} "
                             "with gallery images in the held-out cameras")
        return target_pid
    others = [pid for pid in candidates if pid != wearer]
    return others[int(np.random.default_rng([seed, wearer]).integers(len(others)))]


def gallery_features(model: nn.Module, data: ReIDData, device: torch.device, batch_size: int, progress: bool, name: str) -> FeatureSet:
    """Features of the data's gallery under ``model`` (unnormalised; the model's distance normalises)."""
    return extract_features(model, data.gallery, device, batch_size, progress=progress, desc="gallery", name=name)


def without(gallery: FeatureSet, pid: int) -> FeatureSet:
    """``gallery`` without the images of ``pid`` (the wearer's own images are replaced by his renders)."""
    keep = gallery.pids != pid
    return FeatureSet(gallery.features[keep], gallery.pids[keep], gallery.camids[keep])


def of_identity(gallery: FeatureSet, pid: int) -> torch.Tensor:
    """(G, D) the gallery features of ``pid``."""
    return gallery.features[gallery.pids == pid]
