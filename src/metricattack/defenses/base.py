"""What every defense shares: its options, the inner attack, and the distances and triplets it trains on.

A defense is a training objective (``training.loop.BatchObjective``). Its inner attack is a step
rule from ``attacks/`` run on an objective the defense defines, with the model in eval mode (BatchNorm
uses its running statistics and is not updated; dropout is off) and gradients taken with respect to
the images only, in [0,1] pixel space (normalisation is inside the model). eps and step sizes are in
pixel units out of 255, as users type them, and converted once in ``step_rule``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from metricattack.attacks.attack import eval_mode
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import StepRule
from metricattack.errors import InputError
from metricattack.evaluation.distance import paired_distance
from metricattack.models.reid import ReIDModel
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss

_SEED_RANGE = 2**62
_SQRT_FLOOR = 1e-12  # keeps the gradient of sqrt finite where two embeddings coincide


def embedding_distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """d(f̂_i, ĝ_i) (B,): euclidean distance between row i of each (B,D) after L2 normalisation."""
    return paired_distance(first, second, "euclidean", normalize=True, floor=_SQRT_FLOOR)


def triplet_margin(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """L_T(a,p,n;γ) = max(0, d(a,p) - d(a,n) + γ) per triplet (B,), on L2-normalised embeddings (B,D)."""
    return F.relu(embedding_distance(anchor, positive) - embedding_distance(anchor, negative) + margin)


def shift_objective(model: ReIDModel, clean_features: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ d(f̂(x), f̂(x_clean)) per image (B,): the embedding shift, as the attacks' non-targeted metric loss
    with each image's own clean embedding as its only reference."""
    loss = NonTargetedMetricLoss("euclidean", normalize=True)
    own = torch.eye(len(clean_features), dtype=torch.bool, device=clean_features.device)  # (B,B)
    return lambda images: loss(model(images), clean_features, own)


def random_triplets(labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor i of a P x K batch: a random other image of its identity and one of another identity.

    Returns index tensors (positives (B,), negatives (B,)); an anchor alone with its identity is its own positive.
    """
    same = labels[:, None] == labels[None, :]  # (B,B)
    others = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_pool = torch.where(others.any(dim=1, keepdim=True), others, same)
    scores = torch.rand(labels.shape * 2, generator=generator).to(labels.device)  # (B,B), drawn on the CPU generator
    positives = scores.masked_fill(~positive_pool, -1).argmax(dim=1)
    negatives = scores.T.masked_fill(same, -1).argmax(dim=1)
    return positives, negatives


def check_pixels(value: float, option: str, allow_zero: bool) -> None:
    """One-line error unless ``value`` is a size in pixel units in [0, 255] (or (0, 255])."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 255):
        bound = "[0, 255]" if allow_zero else "(0, 255]"
        raise InputError(f"{option} must be in {bound} pixel units (out of 255), got {value:g}")


@dataclass(frozen=True)
class Defense:
    """Options every defense takes; ``name`` is the registry key and the ``--defense`` value.

    eps, step_size: the inner attack's L∞ radius and step in pixels out of 255 (eps 0: no attack,
    the clean objective); steps: inner iterations η; random_start: start uniformly in the eps-ball;
    clean_weight: weight of the usual re-ID loss on the clean batch, added to the defense's loss.
    """

    name: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = False  # True: the defense starts from a trained model (--weights)

    eps: float = 8.0
    step_size: float = 2.0
    steps: int = 5
    random_start: bool = True
    clean_weight: float = 0.0

    def __post_init__(self) -> None:
        check_pixels(self.eps, "--defense-eps", allow_zero=True)
        check_pixels(self.step_size, "--defense-step-size", allow_zero=False)
        if self.steps < 1 or int(self.steps) != self.steps:
            raise InputError(f"--defense-steps must be an integer >= 1, got {self.steps}")
        for option, value in asdict(self).items():
            if option.endswith("weight") or option in ("beta", "margin"):
                if not value >= 0:
                    raise InputError(f"--defense-{option.replace('_', '-')} must be >= 0, got {value:g}")

    def settings(self) -> dict:
        """The name and every option, for the checkpoint's JSON."""
        return {"name": self.name, **asdict(self)}

    @property
    def cost(self) -> int:
        """Forward-backward passes per training image relative to normal training: inner steps + 1."""
        return (self.steps if self.eps > 0 else 0) + 1

    def prepare_model(self, model: ReIDModel, from_weights: bool) -> ReIDModel:
        """The model to train, given the starting one (random or loaded from --weights)."""
        if self.needs_weights and not from_weights:
            raise InputError(f"--defense {self.name} needs --weights: the trained model it starts from")
        return model

    def prepare(
        self, model: ReIDModel, images: torch.Tensor, labels: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Once before training: the training set to sample from (unchanged by default)."""
        return images, labels

    def step_rule(self) -> StepRule | None:
        """The inner attack's step rule, or None when eps is 0."""
        if self.eps == 0:
            return None
        return StepRule(self.eps / 255, self.step_size / 255, self.steps, random_start=self.random_start)

    def perturb(
        self,
        model: ReIDModel,
        images: torch.Tensor,  # (B,3,H,W) in [0,1]
        objective: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The inner attack: images maximising ``objective`` (per image, (B,)) within the eps-ball, detached.

        The model is in eval mode throughout, and only the images get gradients, so neither the
        parameters' ``.grad`` nor the BatchNorm running statistics change.
        """
        seed = int(torch.randint(_SEED_RANGE, (1,), generator=generator))  # drawn even at eps 0: same stream
        rule = self.step_rule()
        if rule is None:
            return images.detach()
        device_generator = torch.Generator(device=images.device).manual_seed(seed)
        with eval_mode([model]):
            return rule.run(images, objective, device_generator)

    def clean_features(self, model: ReIDModel, images: torch.Tensor) -> torch.Tensor:
        """Eval-mode embeddings (B,D) of the clean images, without gradients (the inner attack's references)."""
        with eval_mode([model]), torch.no_grad():
            return model(images)

    def with_clean_loss(
        self,
        loss: torch.Tensor,
        parts: dict[str, float],
        model: ReIDModel,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        criterion: ReIDLoss,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``loss`` plus clean_weight times the usual loss on the clean batch (skipped at weight 0)."""
        if self.clean_weight == 0:
            return loss, parts
        clean, clean_parts = standard_loss(model, inputs, labels, criterion)
        parts = {**parts, **{f"clean_{k}": v for k, v in clean_parts.items()}}
        return loss + self.clean_weight * clean, parts
