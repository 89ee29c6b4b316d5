"""The named tracker adapters: ``build_tracker(name, appearance=True, **params)``."""

from __future__ import annotations

from metricattack.video.boxmot_trackers import BoxmotTracker
from metricattack.video.deepsort import DeepSortTracker
from metricattack.video.trackers import Tracker, check_name

TRACKERS = {
    "deepsort": lambda appearance, **params: DeepSortTracker(appearance=appearance, **params),
    "strongsort": lambda appearance, **params: BoxmotTracker("strongsort", appearance=appearance, **params),
    "botsort": lambda appearance, **params: BoxmotTracker("botsort", appearance=appearance, **params),
    "deepocsort": lambda appearance, **params: BoxmotTracker("deepocsort", appearance=appearance, **params),
}


def build_tracker(name: str, appearance: bool = True, **params) -> Tracker:
    """A fresh tracker named ``name`` (an unknown name is an InputError listing the valid ones); ``params`` go to the library."""
    check_name(name, sorted(TRACKERS))
    return TRACKERS[name](appearance, **params)
