"""A ranking-margin metric loss: how far each true match is from being ranked behind the k-th nearest impostor.

The paper's objective (``losses.NonTargetedMetricLoss``) keeps pushing pairs already ranked far behind
every impostor, though mAP only moves while a true match is still ranked ahead of them. This loss, scaled
like the DLR loss of Croce & Hein (ICML 2020) by the distance it compares with, saturates at 0 once a
match is behind k impostors, so the gradient goes to the pairs that still hold mAP up. Like the other
losses it knows nothing of steps, sides or data sets: features, references, masks and thresholds.
"""

from __future__ import annotations

import torch

from metricattack.attacks.losses import check_metric, check_mask, masked_mean
from metricattack.errors import InputError
from metricattack.evaluation.distance import pairwise_distance

MARGIN_RANK = 100  # k: a match ranked behind this many impostors no longer counts (the early-stop goal's rank)
_FLOOR = 1e-12  # the smallest threshold we divide by (two features at distance 0 from each other)


def kth_smallest(distances: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Per row of ``distances`` (R,N), the k-th smallest entry where ``mask`` is True (the largest if fewer
    than k; inf if none): behind fewer than k items means behind all of them. Differentiable."""
    masked = distances.masked_fill(~mask, float("inf"))
    smallest = masked.topk(min(k, masked.shape[1]), dim=1, largest=False).values  # (R,k)
    position = (mask.sum(dim=1).clamp(min=1, max=smallest.shape[1]) - 1)[:, None]
    return smallest.gather(1, position).squeeze(1)


class RankingMarginLoss:
    """Per adversarial image x_i, the mean over its true matches j of min(m_ij, 0), with the relative margin

        m_ij = (d(x_i, r_j) - t_ij) / t_ij,

    d = ``pairwise_distance(metric, normalize)`` (the distance the ranking uses), r_j the references, and
    t_ij the distance a match must exceed to be ranked behind k impostors:

    - without ``thresholds`` (x_i ranks the references: the query side), t_ij = d_k(x_i), the k-th smallest
      distance from x_i to its impostors (``impostor_mask``; all of them if fewer than k), moving with x_i;
    - with ``thresholds`` (R,) (each reference r_j ranks the attacked images: the gallery side),
      t_ij = thresholds[j], the k-th smallest distance from r_j to its fixed impostors.

    Values lie in [-1, 0]: -1 when every match coincides with x_i, 0 (with zero gradient) once every match
    is at least t away. Dividing by t makes the loss invariant to a rescaling of the features (d(c a, c b)
    = c d(a, b) for euclidean, c^2 for sqeuclidean). Matches without a finite threshold (no impostor)
    are left out; an image without any counted match has loss 0.
    """

    def __init__(
        self, metric: str = "euclidean", normalize: bool = False, k: int = MARGIN_RANK, thresholds: torch.Tensor | None = None
    ) -> None:
        check_metric(metric)
        if k < 1 or int(k) != k:
            raise InputError(f"the margin's rank k must be an integer >= 1, got {k}")
        self.metric = metric
        self.normalize = normalize
        self.k = int(k)
        self.thresholds = thresholds

    def __repr__(self) -> str:
        fixed = "None" if self.thresholds is None else f"({len(self.thresholds)},)"
        return f"RankingMarginLoss(metric={self.metric!r}, normalize={self.normalize}, k={self.k}, thresholds={fixed})"

    def __call__(
        self,
        adv_features: torch.Tensor,  # (B,D)
        reference_features: torch.Tensor,  # (R,D)
        own_mask: torch.Tensor,  # (B,R) bool: the true matches that count in the ranking
        impostor_mask: torch.Tensor | None = None,  # (B,R) bool: needed without thresholds
    ) -> torch.Tensor:
        """Per-image losses (B,) to maximise."""
        check_mask(own_mask, adv_features, reference_features, "own_mask")
        distances = pairwise_distance(adv_features, reference_features, self.metric, self.normalize)  # (B,R)
        if self.thresholds is None:
            if impostor_mask is None:
                raise ValueError("RankingMarginLoss without thresholds needs an impostor_mask")
            check_mask(impostor_mask, adv_features, reference_features, "impostor_mask")
            thresholds = kth_smallest(distances, impostor_mask, self.k)[:, None]  # (B,1)
        else:
            if self.thresholds.shape != reference_features.shape[:1]:
                raise ValueError(f"thresholds must be one per reference {tuple(reference_features.shape[:1])}, "
                                 f"got {tuple(self.thresholds.shape)}")  # fmt: skip
            thresholds = self.thresholds.to(distances)[None, :]  # (1,R)
        finite = torch.isfinite(thresholds)
        # A safe divisor where there is no threshold: where() then passes no gradient through the infinite one.
        divisors = torch.where(finite, thresholds.clamp(min=_FLOOR), torch.ones_like(thresholds))
        margins = (distances - divisors) / divisors  # (B,R)
        return masked_mean(margins.clamp(max=0), own_mask & finite)
