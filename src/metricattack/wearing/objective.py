"""The wearable pattern's objective: the paper's metric losses on the features of the wearer's renders,
with the printer's constraints, as one value to minimise.

Evading (both sides of a cross-camera match, as the printed images are query and gallery alike): a
rank-1 margin. Each printed render f_i must be farther from its nearest own printed render in another
camera than from its k-th nearest impostor (other identities' clean gallery features), by a relative margin m:

    L = - mean_i min( (min_{j own, other camera} d(f_i, f_j) - d_k(f_i)) / d_k(f_i), m )

The margin saturates at m, so the gradient goes to the renders still matched first. Pushing the wearer's
renders apart on average (the paper's NT loss) barely moves rank-1: the print moves his renders together,
and one own image left nearest is enough.

Impersonating a target t: a rank-5 margin. Each printed render's nearest target gallery image must be
nearer than the k-th nearest of everything else it is ranked against (his own printed renders in other
cameras and the other identities' clean gallery features), by the relative margin m:

    L = - mean_i min( (d_k(f_i; own other camera, others) - min_{j target} d(f_i, g_j)) / d_k(f_i; ...), m )

(the mean pull toward the target's features, the paper's TM loss, left his own images first: 0 of 10 pairs).

plus tv_weight * TV(T) + print_weight * NPS(T) (``printing``), on the model's own distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.attacks.margin import kth_smallest
from metricattack.evaluation.distance import pairwise_distance
from metricattack.wearing.printing import non_printability, total_variation


@dataclass
class References:
    """The fixed features a wearer's renders are compared with."""

    own: torch.Tensor  # (R, D) the wearer's clean renders in the training cameras
    own_cameras: torch.Tensor  # (R,) their 0-based camera ids
    target: torch.Tensor | None = None  # (G, D) the target's clean gallery features (impersonation)
    impostors: torch.Tensor | None = None  # (I, D) clean gallery features of the identities neither his nor the target's


EVADE_MARGIN = 0.1  # m: relative margin by which the nearest own render must lose to the k-th impostor
EVADE_RANK = 1  # k: rank-1 counts, so the nearest impostor must win
IMPERSONATE_MARGIN = 0.1  # m: relative margin by which the nearest target image must beat the k-th other image
IMPERSONATE_RANK = 5  # k: success is the target within the first 5


class WearObjective:
    """Loss to minimise for a texture T from the features of its renders; ``parts`` says what it is made of."""

    def __init__(self, goal: str, metric: str, normalize: bool, palette: torch.Tensor, tv_weight: float, print_weight: float):
        self.goal = goal
        self.metric, self.normalize = metric, normalize
        self.palette = palette
        self.tv_weight, self.print_weight = tv_weight, print_weight

    def metric_loss(self, features: torch.Tensor, cameras: torch.Tensor, references: References) -> torch.Tensor:
        """The per-render metric loss to maximise (B,): features (B, D) of renders in 0-based ``cameras`` (B,)."""
        if self.goal == "impersonate":
            return self.impersonation_margin(features, cameras, references)
        other_camera = cameras[:, None] != references.own_cameras[None, :]  # (B, R)
        if not other_camera.any(dim=1).all():  # one training camera: every clean render is a reference
            other_camera = torch.ones_like(other_camera)
        assert references.impostors is not None, "evading needs the impostors' features"
        apart = cameras[:, None] != cameras[None, :]  # (B, B): the printed renders match across cameras
        if apart.any(dim=1).all():
            own = kth_smallest(self.distance(features, features), apart, 1)
        else:  # one training camera: his clean renders stand for his other images
            own = kth_smallest(self.distance(features, references.own), other_camera, 1)
        impostors = self.distance(features, references.impostors)
        threshold = kth_smallest(impostors, torch.ones_like(impostors, dtype=torch.bool), EVADE_RANK).clamp(min=1e-12)
        return ((own - threshold) / threshold).clamp(max=EVADE_MARGIN)

    def impersonation_margin(self, features: torch.Tensor, cameras: torch.Tensor, references: References) -> torch.Tensor:
        """(B,) the rank-5 impersonation margin of renders ``features`` (B, D) in 0-based ``cameras`` (B,)."""
        assert references.target is not None and references.impostors is not None, "impersonation needs target and others"
        target = self.distance(features, references.target).min(dim=1).values
        others = torch.cat([self.distance(features, features), self.distance(features, references.impostors)], dim=1)
        counted = torch.cat([cameras[:, None] != cameras[None, :], torch.ones_like(others[:, len(features):], dtype=torch.bool)], dim=1)
        threshold = kth_smallest(others, counted, IMPERSONATE_RANK).clamp(min=1e-12)
        return ((threshold - target) / threshold).clamp(max=IMPERSONATE_MARGIN)

    def distance(self, features: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B, R) the model's own distance."""
        return pairwise_distance(features, references, self.metric, self.normalize)

    def __call__(
        self, texture: torch.Tensor, features: torch.Tensor, cameras: torch.Tensor, references: References
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss to minimise, its parts as numbers) for ``texture`` (3, h, w) and its renders' features."""
        metric = self.metric_loss(features, cameras, references).mean()
        smoothness = total_variation(texture)
        printability = non_printability(texture, self.palette)
        loss = -metric + self.tv_weight * smoothness + self.print_weight * printability
        parts = {"metric": metric.item(), "tv": smoothness.item(), "nps": printability.item(), "loss": loss.item()}
        return loss, parts
