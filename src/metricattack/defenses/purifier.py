"""A purifier: a small denoising network P in front of the frozen model f, trained so that f(P(x+δ)) ≈ f(x).

Our reading of a metric-preserving network (Bai et al. name one but publish neither its architecture nor
its loss), not a reproduction. The inner attack goes through P: δ* = argmax d(f̂(P(x+δ)), f̂(x)), where
f̂(x) is the frozen model's clean embedding without P; the loss is

L = β · mean d(f̂(P(x+δ*)), f̂(x)) + clean_weight · mean d(f̂(P(x)), f̂(x)),

so P removes the attack without moving clean embeddings. The checkpoint holds f∘P as one model, so
every command attacks through P.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from metricattack.defenses.base import Defense, embedding_distance, shift_objective
from metricattack.errors import InputError
from metricattack.models.reid import ReIDModel
from metricattack.training.losses import ReIDLoss

PURIFIER_NAME = "denoiser"


def with_purifier(model: ReIDModel) -> ReIDModel:
    """f∘P: ``model`` (frozen: no parameter trains) behind a fresh purifier that starts as the identity."""
    if model.purifier is not None:
        raise InputError("--defense purifier: the --weights model already has a purifier")
    purified = ReIDModel(replace(model.spec, purifier=PURIFIER_NAME))
    purified.load_state_dict(model.state_dict(), strict=False)  # everything but the purifier's weights
    for name, parameter in purified.named_parameters():
        parameter.requires_grad_(name.startswith("purifier."))
    return purified.train(model.training)


@dataclass(frozen=True)
class Purifier(Defense):
    """Train only P against the embedding-shift attack through f∘P."""

    name = "purifier"
    needs_weights = True
    clean_weight: float = 1.0
    beta: float = 1.0

    def prepare_model(self, model: ReIDModel, from_weights: bool) -> ReIDModel:
        """f∘P with f from --weights, frozen."""
        return with_purifier(super().prepare_model(model, from_weights))

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """β · adversarial shift + clean_weight · clean shift, f in eval mode throughout (its BN frozen)."""
        if model.purifier is None:
            raise InputError("--defense purifier: the model has no purifier (build it with with_purifier)")
        model.eval()  # f is frozen, BN statistics included; P has no BatchNorm or dropout
        with torch.no_grad():
            target = model.forward_unpurified(inputs)  # f̂(x) (B,D)
        adversarial = self.perturb(model, inputs, shift_objective(model, target), generator)
        features = model(torch.cat([inputs, adversarial]))
        count = len(inputs)
        clean = embedding_distance(features[:count], target).mean()
        attacked = embedding_distance(features[count:], target).mean()
        loss = self.beta * attacked + self.clean_weight * clean
        return loss, {"shift": float(attacked.detach()), "clean_shift": float(clean.detach())}
