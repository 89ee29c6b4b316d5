"""One frame's attack on a tracker's association: which detections to attack and toward what, read from
the features the tracker has stored for each track, and the perturbation of the pixels inside their boxes.

The tracker compares each detection's feature with the features each track has stored (a gallery per
track), so the references are those stored features:
- ``untargeted`` (track breaking): a detection is pushed away from its own track's stored features
  (the paper's loss with the track's features as the gallery), with ``loss="margin"`` until its own
  track is farther than the nearest other track (the ranking margin with k = 1), or with
  ``loss="neighbour"`` away from its own track's nearest stored feature and toward the nearest stored
  feature of the other tracks that were near it in the image in the frame before (the tracks its motion
  gate lets it join), so the tracker does not only lose it but gives it to a neighbour;
- ``switch`` (TraSw's goal): for a pair of people whose tracks were A and B when the attack began, the
  first's detection is pulled toward B's stored features and pushed from A's, and the second's toward A's,
  in every attacked frame of the pair, so that once the tracker has swapped them the swapped tracks
  store each other's features and keep the switch.
A detection's own track is the one the tracker would match it to on the clean frame (``assign``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import PULLS, NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.margin import RankingMarginLoss
from metricattack.evaluation.distance import pairwise_distance
from metricattack.tracking.embedding import CropEmbedder
from metricattack.tracking.patches import cut_patches
from metricattack.video.motfiles import FrameBoxes

LOSSES = ("paper", "margin", "neighbour")
NEAR = 1.5  # a track is a neighbour of a detection when its box centre is within this many box widths
NEIGHBOUR_PULL = 0.5  # the weight of the pull toward a neighbour against the push from the own track
SWITCH_PUSH = 0.3  # a switch's push from the own track against its pull toward the other's (measured: docs/tracking.md)


@dataclass
class FrameTargets:
    """What to attack in one frame: the detections, and per detection its own and target reference rows."""

    detections: np.ndarray  # (A,) indices into the frame's detections
    references: torch.Tensor  # (R,D) the stored features of the tracks involved
    own_mask: torch.Tensor  # (A,R) bool
    target_mask: torch.Tensor | None  # (A,R) bool: switch attacks and the neighbour loss
    impostor_mask: torch.Tensor  # (A,R) bool: the rows of the other tracks


def stored_rows(stored: dict[int, np.ndarray], tracks: list[int]) -> tuple[torch.Tensor, np.ndarray]:
    """The stored features of ``tracks`` stacked (R,D), and the track of each row (R,)."""
    features = [np.asarray(stored[track], dtype=np.float32).reshape(-1, np.asarray(stored[track]).shape[-1]) for track in tracks]
    owners = np.concatenate([np.full(len(f), track) for f, track in zip(features, tracks)]) if tracks else np.zeros(0, int)
    return torch.from_numpy(np.concatenate(features)) if tracks else torch.zeros(0, 0), owners


def neighbours(boxes: np.ndarray, assigned: np.ndarray, previous: FrameBoxes) -> list[set[int]]:
    """Per detection, the other tracks whose box in the previous frame's output has its centre within
    ``NEAR`` box widths of the detection's centre."""
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    track_centres = previous.boxes[:, :2] + previous.boxes[:, 2:] / 2
    near = []
    for centre, width, own in zip(centres, boxes[:, 2], assigned):
        close = np.linalg.norm(track_centres - centre, axis=1) <= NEAR * max(width, 1.0)
        near.append({int(track) for track in previous.ids[close] if track != own})
    return near


def untargeted_targets(assigned: np.ndarray, stored: dict[int, np.ndarray], near: list[set[int]] | None = None) -> FrameTargets | None:
    """Every detection matched to a track with stored features, pushed from them, and with ``near`` (per
    detection, its neighbouring tracks) pulled toward those with stored features (None: nothing to attack)."""
    tracks = sorted(track for track, features in stored.items() if len(features))
    attacked = np.array([i for i, track in enumerate(assigned) if track in tracks], dtype=np.int64)
    if not len(attacked):
        return None
    references, owners = stored_rows(stored, tracks)
    own = torch.from_numpy(owners[None, :] == assigned[attacked][:, None])
    target = None
    if near is not None:
        target = torch.from_numpy(np.stack([np.isin(owners, sorted(near[i])) for i in attacked]))
    return FrameTargets(attacked, references, own, target, ~own)


class NeighbourLoss:
    """L_i = min_{j in O_i} d(f_i, g_j) - w * min_{j in T_i} d(f_i, g_j), the second term 0 where T_i is empty:
    away from the own track's nearest stored feature and toward the nearest neighbour's (w = ``pull_weight``)."""

    def __init__(self, metric: str, normalize: bool, pull_weight: float = NEIGHBOUR_PULL) -> None:
        self.metric, self.normalize, self.pull_weight = metric, normalize, pull_weight

    def __repr__(self) -> str:
        return f"NeighbourLoss(metric={self.metric!r}, normalize={self.normalize}, pull_weight={self.pull_weight})"

    def __call__(self, adv_features: torch.Tensor, reference_features: torch.Tensor, own_mask: torch.Tensor,
                 target_mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Per-detection losses (A,) to maximise."""
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)  # (A,R)
        return PULLS["nearest"](distances, own_mask) - self.pull_weight * PULLS["nearest"](distances, target_mask)


def switch_targets(stored: dict[int, np.ndarray], swaps: dict[int, tuple[int, int]]) -> FrameTargets | None:
    """Each detection of ``swaps`` (detection -> (own track, target track)) pulled toward its target track's
    stored features and pushed from its own track's (None: no such detection whose tracks have features)."""
    swaps = {d: pair for d, pair in swaps.items() if all(len(stored.get(track, ())) for track in pair)}
    if not swaps:
        return None
    attacked = np.array(sorted(swaps), dtype=np.int64)
    tracks = sorted({track for pair in swaps.values() for track in pair})
    references, owners = stored_rows(stored, tracks)
    own = torch.from_numpy(np.stack([owners == swaps[i][0] for i in attacked]))
    target = torch.from_numpy(np.stack([owners == swaps[i][1] for i in attacked]))
    return FrameTargets(attacked, references, own, target, ~own)


def metric_loss(goal: str, loss: str, metric: str, normalize: bool):
    """The loss of a goal (``untargeted`` / ``switch``) in the tracker's distance."""
    if goal == "switch":
        # the tracker matches the nearest stored feature, so both terms take the nearest
        return TargetedMetricLoss(metric, normalize, push_weight=SWITCH_PUSH, pull="nearest", push="nearest")
    if loss == "margin":
        return RankingMarginLoss(metric, normalize, k=1)
    if loss == "neighbour":
        return NeighbourLoss(metric, normalize)
    return NonTargetedMetricLoss(metric, normalize)


def attack_frame(
    frame: torch.Tensor,  # (1,3,H,W) in [0,1]
    corners: np.ndarray,  # (N,4) the frame's detection boxes
    targets: FrameTargets,
    embedder: CropEmbedder,
    loss,
    step_rule,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """The frame with the pixels inside the attacked detections' boxes perturbed (float, not yet rounded), and
    the attack's pass counts.

    The optimised variable is the patches around the attacked boxes (``patches``: overlapping boxes share
    one), so the steps and projections do not sweep the whole frame; the rest of the frame is unchanged.
    Under L2 the ball is per patch."""
    patches = cut_patches(frame, corners[targets.detections], embedder.input_size)
    attack = MetricAttack([embedder.model], [loss], step_rule)
    masks = {"own_mask": targets.own_mask.to(frame.device)}
    if targets.target_mask is not None:
        masks["target_mask"] = targets.target_mask.to(frame.device)
    if isinstance(loss, RankingMarginLoss):
        masks["impostor_mask"] = targets.impostor_mask.to(frame.device)
    attacked = attack.perturb(patches.variable, [targets.references.to(frame.device)], generator=generator,
                              input_map=patches.crops, mask=patches.crops.mask(patches.variable), **masks)  # fmt: skip
    return patches.paste(frame, attacked), attack.counters()
