"""The wearable pattern's objective: the paper's metric losses on the features of the wearer's renders,
with the printer's constraints, as one value to minimise.

Evading (both sides of a cross-camera match, as the printed images are query and gallery alike): a
rank-1 margin. Each printed render f_i must be farther from its nearest own printed render in another
camera than from its k-th nearest impostor (other identities' clean gallery features), by a relative margin m:

    L = - mean_i min( (min_{j own, other camera} d(f_i, f_j) - d_k(f_i)) / d_k(f_i), m )

The margin saturates at m, so the gradient goes to the renders still matched first. Pushing the wearer's
renders apart on average (the paper's NT loss) barely moves rank-1: the print moves his renders together,
and one own image left nearest is enough.

Impersonating a target t:

    L = - mean_i TM(f_i; own clean references in other cameras, target's clean gallery features)

plus tv_weight * TV(T) + print_weight * NPS(T) (``printing``). NT is ``NonTargetedMetricLoss`` and TM
``TargetedMetricLoss`` (mean pull, push weight 1), on the model's own distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.attacks.losses import TargetedMetricLoss
from metricattack.attacks.margin import kth_smallest
from metricattack.evaluation.distance import pairwise_distance
from metricattack.wearing.printing import non_printability, total_variation


@dataclass
class References:
    """The fixed features a wearer's renders are compared with."""

    own: torch.Tensor  # (R, D) the wearer's clean renders in the training cameras
    own_cameras: torch.Tensor  # (R,) their 0-based camera ids
    target: torch.Tensor | None = None  # (G, D) the target's clean gallery features (impersonation)
    impostors: torch.Tensor | None = None  # (I, D) other identities' clean gallery features (evading)


EVADE_MARGIN = 0.1  # m: relative margin by which the nearest own render must lose to the k-th impostor
EVADE_RANK = 1  # k: rank-1 counts, so the nearest impostor must win


class WearObjective:
    """Loss to minimise for a texture T from the features of its renders; ``parts`` says what it is made of."""

    def __init__(self, goal: str, metric: str, normalize: bool, palette: torch.Tensor, tv_weight: float, print_weight: float):
        self.goal = goal
        self.metric, self.normalize = metric, normalize
        self.pull = TargetedMetricLoss(metric, normalize)
        self.palette = palette
        self.tv_weight, self.print_weight = tv_weight, print_weight

    def metric_loss(self, features: torch.Tensor, cameras: torch.Tensor, references: References) -> torch.Tensor:
        """The per-render metric loss to maximise (B,): features (B, D) of renders in 0-based ``cameras`` (B,)."""
        other_camera = cameras[:, None] != references.own_cameras[None, :]  # (B, R)
        if not other_camera.any(dim=1).all():  # one training camera: every clean render is a reference
            other_camera = torch.ones_like(other_camera)
        if self.goal == "impersonate":
            assert references.target is not None, "impersonation needs the target's features"
            reference = torch.cat([references.own, references.target])
            none_own = other_camera.new_zeros(len(cameras), len(references.target))
            own = torch.cat([other_camera, none_own], dim=1)  # (B, R + G)
            target = torch.cat([torch.zeros_like(other_camera), ~none_own], dim=1)
            return self.pull(features, reference, own, target)
        assert references.impostors is not None, "evading needs the impostors' features"
        apart = cameras[:, None] != cameras[None, :]  # (B, B): the printed renders match across cameras
        if apart.any(dim=1).all():
            own = kth_smallest(self.distance(features, features), apart, 1)
        else:  # one training camera: his clean renders stand for his other images
            own = kth_smallest(self.distance(features, references.own), other_camera, 1)
        impostors = self.distance(features, references.impostors)
        threshold = kth_smallest(impostors, torch.ones_like(impostors, dtype=torch.bool), EVADE_RANK).clamp(min=1e-12)
        return ((own - threshold) / threshold).clamp(max=EVADE_MARGIN)

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
