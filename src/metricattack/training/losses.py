"""Training losses: label-smoothed cross entropy and batch-hard triplet."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metricattack.errors import InputError
from metricattack.evaluation.distance import pairwise_distance

LOSS_KINDS = ("softmax", "triplet", "softmax+triplet")


class CrossEntropyLabelSmooth:
    """Cross entropy with targets (1 - eps) * onehot + eps / C (Szegedy et al.; torchreid's form)."""

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        self.num_classes = num_classes
        self.epsilon = epsilon

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        targets = F.one_hot(labels, self.num_classes).to(log_probs.dtype)
        targets = (1 - self.epsilon) * targets + self.epsilon / self.num_classes
        return -(targets * log_probs).sum(dim=1).mean()


class TripletLoss:
    """Batch-hard triplet loss (Hermans et al.): for each anchor, the farthest positive and the
    nearest negative; mean of max(0, d_ap - d_an + margin), or softplus(d_ap - d_an) if margin <= 0."""

    def __init__(self, margin: float = 0.3, metric: str = "euclidean") -> None:
        self.margin = margin
        self.metric = metric

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distances = pairwise_distance(features, features, metric=self.metric)
        same = labels[:, None] == labels[None, :]
        hardest_positive = distances.masked_fill(~same, float("-inf")).amax(dim=1)
        hardest_negative = distances.masked_fill(same, float("inf")).amin(dim=1)
        gap = hardest_positive - hardest_negative
        if self.margin > 0:
            return F.relu(gap + self.margin).mean()
        return F.softplus(gap).mean()


class ReIDLoss:
    """``softmax``, ``triplet`` or ``softmax+triplet``: CE on the logits, triplet on the pre-neck features."""

    def __init__(self, kinds: str, num_classes: int, label_smoothing: float = 0.1, margin: float = 0.3) -> None:
        if kinds not in LOSS_KINDS:
            raise InputError(f"--loss: unknown loss {kinds!r} (expected one of {', '.join(LOSS_KINDS)})")
        self.parts = {}
        if "softmax" in kinds:
            self.parts["softmax"] = CrossEntropyLabelSmooth(num_classes, label_smoothing)
        if "triplet" in kinds:
            self.parts["triplet"] = TripletLoss(margin)

    def __call__(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        values = {
            name: loss(logits if name == "softmax" else features, labels) for name, loss in self.parts.items()
        }
        total = sum(values.values())
        return total, {name: float(value.detach()) for name, value in values.items()}
