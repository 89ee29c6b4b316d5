"""An attack = model(s) + metric loss + step rule: perturb images so their features move as the loss says."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from metricattack.attacks.maps import InputMap


@contextmanager
def eval_mode(models: Sequence[nn.Module]):
    """Put models in eval mode for the block and restore the mode of each of their modules afterwards.

    Module by module, not ``model.train(mode)``: that would put every submodule in the model's mode (a wrapper
    such as flip averaging, or a model with frozen batch norms, may hold modules in another mode).
    """
    modes = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


class MetricAttack:
    """Perturb images to maximise metric losses against fixed reference features, averaged over models.

    For an ensemble of M models with references R_m: objective(x) = 1/M * sum_m loss_m(f_m(x), R_m, masks),
    where each model's loss uses the distance that model is evaluated with.

    The optimised variable need not be the models' input: with an ``input_map`` (``attacks.maps``) the
    variable x (B,...) reaches the models as ``input_map(x)`` (N,C,h,w), a differentiable map such as the
    resized crops of boxes in frames; the loss masks then have one row per model input, and each
    variable row's objective is the sum of its inputs' losses (``input_map.owners``). A ``mask`` says where
    the variable may change (``StepRule.run``). Without either, the variable is the images themselves.

    ``gradient_passes`` / ``forward_passes`` count the images passed forward and backward through a model
    (one per image, step and model) and forward only (early-stopping checks, best-iterate scoring).
    """

    def __init__(self, models: Sequence[nn.Module], losses: Sequence[Callable[..., torch.Tensor]], step_rule) -> None:
        if len(models) != len(losses) or not models:
            raise ValueError("MetricAttack needs one loss per model and at least one model")
        self.models = list(models)
        self.losses = list(losses)
        self.step_rule = step_rule
        self.gradient_passes = 0
        self.forward_passes = 0

    def __repr__(self) -> str:
        return f"MetricAttack(models={len(self.models)}, losses={self.losses!r}, step_rule={self.step_rule!r})"

    def counters(self) -> dict[str, int]:
        """The passes so far."""
        return {"gradient_passes": self.gradient_passes, "forward_passes": self.forward_passes}

    def perturb(
        self,
        images: torch.Tensor,  # (B,3,H,W) in [0,1]
        references: Sequence[torch.Tensor],  # one (R,D_m) per model
        own_mask: torch.Tensor,  # (B,R) bool
        target_mask: torch.Tensor | None = None,  # (B,R) bool, targeted attacks only
        generator: torch.Generator | None = None,
        goal: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
        impostor_mask: torch.Tensor | None = None,  # (B,R) bool, losses that rank (RankingMarginLoss)
        input_map: InputMap | None = None,
        mask: torch.Tensor | None = None,  # broadcastable to images: where they may change
    ) -> torch.Tensor:
        """Adversarial images (detached), within the step rule's eps-ball and [0,1].

        Each loss gets the masks given, by name (``own_mask``, ``target_mask``, ``impostor_mask``); with an
        ``input_map`` they have one row per model input (N,R) instead of one per image.
        ``goal(features, rows)``, given each model's features (A,D_m) of the images at batch rows ``rows``,
        says which have reached their goal (A,) bool; a step rule with ``early_stop`` stops iterating them.
        """
        if input_map is not None and goal is not None:
            raise ValueError("a goal (early stopping) needs one model input per image: it does not combine with an input_map")
        given = {"own_mask": own_mask, "target_mask": target_mask, "impostor_mask": impostor_mask}
        masks = {name: mask for name, mask in given.items() if mask is not None}

        def features(x: torch.Tensor) -> list[torch.Tensor]:
            if torch.is_grad_enabled():
                self.gradient_passes += len(x) * len(self.models)
            else:
                self.forward_passes += len(x) * len(self.models)
            return [model(x) for model in self.models]

        def objective(x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:  # (B,)
            row_masks = masks if rows is None else {name: mask[rows] for name, mask in masks.items()}
            inputs = x if input_map is None else input_map(x)
            losses = [loss(f, ref, **row_masks) for f, loss, ref in zip(features(inputs), self.losses, references)]
            values = torch.stack(losses).mean(dim=0)  # (N,): one per model input
            if input_map is None:
                return values
            return values.new_zeros(len(x)).index_add(0, input_map.owners.to(values.device), values)

        def done(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # (A,) bool
            return goal(features(x), rows)

        with eval_mode(self.models):
            return self.step_rule.run(images, objective, generator, None if goal is None else done, mask=mask)
