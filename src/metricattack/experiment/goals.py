"""When an adversarial image has done its job, so that an early-stopping step rule can stop iterating it.

Each test takes the distances (B,R) from B adversarial images to R fixed references (the other side's
clean features, under the distance the model is evaluated with) and returns (B,) bool. ``own_valid``
marks the references of the image's own identity that count in the ranking (not the same camera);
``impostors`` the references of other identities that count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from metricattack.attacks.margin import kth_smallest
from metricattack.evaluation import pairwise_distance
from metricattack.evaluation.pipeline import PLAIN
from metricattack.evaluation.ranking import valid_mask

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.setting import AttackSetting, NamedModel
    from metricattack.experiment.side_images import SideImages
    from metricattack.models.reid import ModelSpec

__all__ = ["GOAL_RANK", "ahead_of_thresholds", "behind_impostors", "behind_thresholds", "goal_tests", "kth_smallest",
           "ranking_thresholds", "target_first"]

GOAL_RANK = 100  # non-targeted goal: every true match pushed behind this many impostors


def ranking_thresholds(
    query_features: torch.Tensor,  # (Q,D)
    gallery_features: torch.Tensor,  # (G,D)
    spec: ModelSpec,
    query: SideImages,
    gallery: SideImages,
    k: int,
    impostors_only: bool,
) -> torch.Tensor:
    """Per query (Q,), the k-th smallest distance (``kth_smallest``) to a gallery item that counts in its ranking
    (``impostors_only``: of another identity), under the model's distance: the distance a gallery image must
    beat to reach rank k, or exceed to fall behind k impostors."""
    device = query_features.device
    query_pids, query_camids = query.pids.to(device), query.camids.to(device)
    gallery_pids, gallery_camids = gallery.pids.to(device), gallery.camids.to(device)
    parts = []
    for start, stop, distances in PLAIN.distance_rows(query_features, gallery_features, spec.metric, spec.normalize).chunks():
        pids, camids = query_pids[start:stop], query_camids[start:stop]
        counted = valid_mask(pids, gallery_pids, camids, gallery_camids)
        if impostors_only:
            counted &= pids[:, None] != gallery_pids[None, :]
        parts.append(kth_smallest(distances, counted, k))
    return torch.cat(parts)


def behind_thresholds(distances: torch.Tensor, own_valid: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Gallery side: every valid own reference r (a query) has the image farther than ``thresholds[r]`` (R,),
    its k-th nearest impostor (``kth_smallest`` of its clean distances), so it ranks the image below rank k."""
    return ((distances > thresholds[None, :]) | ~own_valid).all(dim=1)


def behind_impostors(distances: torch.Tensor, own_valid: torch.Tensor, impostors: torch.Tensor, k: int) -> torch.Tensor:
    """Query side: at least k impostors (all, if fewer) are nearer to the image than its nearest valid own reference."""
    nearest_own = distances.masked_fill(~own_valid, float("inf")).min(dim=1).values  # (B,)
    return ((distances < nearest_own[:, None]) & impostors).sum(dim=1) >= impostors.sum(dim=1).clamp(max=k)


def target_first(distances: torch.Tensor, target_mask: torch.Tensor, competitors: torch.Tensor) -> torch.Tensor:
    """Query side, targeted: the nearest target reference is nearer than every competitor (rank 1)."""
    nearest_target = distances.masked_fill(~target_mask, float("inf")).min(dim=1).values
    nearest_other = distances.masked_fill(~competitors, float("inf")).min(dim=1).values
    return nearest_target < nearest_other


def ahead_of_thresholds(distances: torch.Tensor, target_mask: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Gallery side, targeted: every target reference r (a query) has the image nearer than ``thresholds[r]``,
    its nearest clean gallery item, so the image is its rank 1."""
    return ((distances < thresholds[None, :]) | ~target_mask).all(dim=1)


def goal_tests(
    context: AttackContext,
    setting: AttackSetting,
    sources: list[NamedModel],
    side: SideImages,
    reference: SideImages,
    reference_slot: int,
    targets: torch.Tensor,  # (N,) target pid per image of ``side`` (-1: none)
):
    """For early stopping: a map from a batch (indices into ``side``) to its ``goal(features, rows)`` test.

    Non-targeted: every true match ranked below rank GOAL_RANK; targeted: the target at rank 1, under the
    clean ranking of the other side (see ``goals``), for every source model.
    """
    device = context.device
    reference_pids, reference_camids = reference.pids.to(device), reference.camids.to(device)
    specs = [named.model.spec for named in sources]
    thresholds = []  # gallery side: per query, the distance a planted / pushed image must beat
    if reference_slot == 1:
        targeted = setting.goal == "targeted"
        thresholds = [ranking_thresholds(*context.clean_features(named), spec, reference, side, 1 if targeted else GOAL_RANK,
                                         impostors_only=not targeted) for named, spec in zip(sources, specs)]  # fmt: skip

    def goal_of(batch: torch.Tensor):
        pids, camids = side.pids[batch].to(device), side.camids[batch].to(device)
        own_valid = (pids[:, None] == reference_pids[None, :]) & (camids[:, None] != reference_camids[None, :])
        impostors = (pids[:, None] != reference_pids[None, :]) & (reference_pids[None, :] != -1)
        target_mask = targets[batch].to(device)[:, None] == reference_pids[None, :]

        def goal(features: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
            reached = torch.ones(len(rows), dtype=torch.bool, device=device)
            for number, (adv_features, named, spec) in enumerate(zip(features, sources, specs)):
                distances = pairwise_distance(
                    adv_features, context.clean_features(named)[1 - reference_slot], spec.metric, spec.normalize
                )
                if setting.goal == "targeted" and reference_slot == 1:
                    reached &= ahead_of_thresholds(distances, target_mask[rows], thresholds[number])
                elif setting.goal == "targeted":
                    competitors = (impostors[rows] | own_valid[rows]) & ~target_mask[rows]
                    reached &= target_first(distances, target_mask[rows], competitors)
                elif reference_slot == 1:
                    reached &= behind_thresholds(distances, own_valid[rows], thresholds[number])
                else:
                    reached &= behind_impostors(distances, own_valid[rows], impostors[rows], GOAL_RANK)
            return reached

        return goal

    return goal_of
