"""Offline adversarial training, the baseline described for Bai et al.'s defense: adversarial copies of the
training set are made once (I-FGSM, eps 5, against the frozen trained model given by --weights, with the
paper's metric loss: away from the clean embeddings of the image's own identity), then the model is trained
on clean ∪ adversarial with the usual re-ID loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.data.images import to_8bit
from metricattack.defenses.base import Defense
from metricattack.models.reid import ReIDModel
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss

_CHUNK = 256  # images attacked per batch while making the copies


@dataclass(frozen=True)
class Offline(Defense):
    """I-FGSM copies (eps 5, step 1, 6 steps, no random start) made once; train on both sets."""

    name = "offline"
    needs_weights = True
    eps: float = 5.0
    step_size: float = 1.0
    steps: int = 6
    random_start: bool = False

    @property
    def cost(self) -> int:
        """The copies cost ``steps`` passes per image once; training then sees twice the images per epoch."""
        return 2

    def prepare(
        self, model: ReIDModel, images: torch.Tensor, labels: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the adversarial copies (8-bit, like the originals) of every training image, same labels."""
        rule = self.step_rule()
        if rule is None:
            return torch.cat([images, images]), torch.cat([labels, labels])
        with torch.no_grad():
            references = torch.cat([self.clean_features(model, chunk.to(device).float().div(255)) for chunk in images.split(_CHUNK)])
        attack = MetricAttack([model], [NonTargetedMetricLoss("euclidean", normalize=True)], rule)
        device_labels = labels.to(device)
        copies = []
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK].to(device).float().div(255)
            own = device_labels[start : start + _CHUNK, None] == device_labels[None, :]  # (b,N)
            adversarial = attack.perturb(chunk, [references], own)
            copies.append(to_8bit(adversarial).cpu())
        return torch.cat([images, *copies]), torch.cat([labels, labels])

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The usual loss: the batch already mixes clean and adversarial images."""
        return standard_loss(model, inputs, labels, criterion)
