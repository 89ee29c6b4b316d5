"""Training losses: label-smoothed cross entropy, batch-hard triplet, and their BNNeck-style sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metricattack.errors import InputError
from metricattack.evaluation.distance import DISTANCE_METRICS, pairwise_distance

LOSS_KINDS = ("softmax", "triplet", "softmax+triplet")


class CrossEntropyLabelSmooth(nn.Module):
    """Cross entropy against smoothed targets (Szegedy et al.; torchreid's form).

    loss = mean_i sum_c -q_ic log softmax(logits_i)_c with q_ic = (1 - eps) [c = y_i] + eps / C,
    the same as ``F.cross_entropy(logits, labels, label_smoothing=eps)``.
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"the number of classes must be at least 1, got {num_classes}")
        if not 0 <= epsilon < 1:
            raise InputError(f"--label-smoothing must be in [0, 1), got {epsilon}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss of logits (B,C) against integer labels (B,)."""
        log_probs = F.log_softmax(logits, dim=1)
        targets = F.one_hot(labels, self.num_classes).to(log_probs.dtype)
        targets = (1 - self.epsilon) * targets + self.epsilon / self.num_classes
        return -(targets * log_probs).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, epsilon={self.epsilon}"


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al.), as torchreid computes it.

    For each anchor a: d_ap = max distance to a feature of the same label (itself when it is alone),
    d_an = min distance to a feature of another label; loss = mean_a max(0, d_ap - d_an + margin)
    (``MarginRankingLoss``), or mean_a softplus(d_ap - d_an) (soft margin) if margin <= 0.
    An anchor with no negative in the batch contributes 0.
    """

    def __init__(self, margin: float = 0.3, metric: str = "euclidean") -> None:
        super().__init__()
        if metric not in DISTANCE_METRICS:
            raise InputError(f"unknown distance {metric!r} (expected one of {', '.join(DISTANCE_METRICS)})")
        self.margin = margin
        self.metric = metric

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss over the anchors of features (B,D) with integer labels (B,)."""
        return self.per_anchor(features, labels).mean()

    def per_anchor(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each anchor's loss (B,)."""
        distances = pairwise_distance(features, features, metric=self.metric)  # (B,B)
        same = labels[:, None] == labels[None, :]
        hardest_positive = distances.masked_fill(~same, float("-inf")).amax(dim=1)
        hardest_negative = distances.masked_fill(same, float("inf")).amin(dim=1)
        gap = hardest_positive - hardest_negative
        if self.margin > 0:
            return F.relu(gap + self.margin)
        return F.softplus(gap)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, metric={self.metric!r}"


class ReIDLoss(nn.Module):
    """``softmax``, ``triplet`` or ``softmax+triplet`` (summed with weight 1 each, as in BoT).

    Called as ``loss(logits, features, labels) -> (total, {part name: value})``: the softmax part uses
    the logits (B,C), the triplet part the features (B,D) the caller chooses (the pre-BNNeck features
    in BoT). ``logits`` may be None when only the triplet part is used.
    """

    def __init__(self, kinds: str, num_classes: int, label_smoothing: float = 0.1, margin: float = 0.3) -> None:
        super().__init__()
        if kinds not in LOSS_KINDS:
            raise InputError(f"--loss: unknown loss {kinds!r} (expected one of {', '.join(LOSS_KINDS)})")
        self.kinds = kinds
        self.parts = nn.ModuleDict()
        if "softmax" in kinds.split("+"):
            self.parts["softmax"] = CrossEntropyLabelSmooth(num_classes, label_smoothing)
        if "triplet" in kinds.split("+"):
            self.parts["triplet"] = TripletLoss(margin)

    def forward(
        self, logits: torch.Tensor | None, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The summed loss and each part's value as a float (for logging)."""
        values = {name: loss(logits if name == "softmax" else features, labels) for name, loss in self.parts.items()}
        total = torch.stack(list(values.values())).sum()
        return total, {name: float(value.detach()) for name, value in values.items()}
