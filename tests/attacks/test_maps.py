"""The attack core on any variable: masks honoured by every rule and norm, box crops as a map to model inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.maps import BoxCrops
from metricattack.attacks.step_rule import StepRule
from metricattack.attacks.steps import STEP_RULES, build_step_rule

EPS = {"linf": 8 / 255, "l2": 0.5}
RULES = sorted(STEP_RULES)


def rule_options(name: str, norm: str) -> dict:
    return {"norm": norm} if name == "fgsm" else {"norm": norm, "steps": 4}


def convex_objective(seed: int = 0):
    """Per-row ||W x - c||^2 through a fixed random linear map."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(5, 3 * 6 * 5, generator=generator)
    target = torch.randn(5, generator=generator)
    return lambda x, rows=None: ((x.flatten(1) @ weight.T - target) ** 2).sum(dim=1)


def variable(seed: int = 0) -> torch.Tensor:
    return torch.rand(4, 3, 6, 5, generator=torch.Generator().manual_seed(seed))


def region(seed: int = 1) -> torch.Tensor:
    """A random (4,1,6,5) 0/1 mask with some pixels in every row."""
    mask = torch.rand(4, 1, 6, 5, generator=torch.Generator().manual_seed(seed)) < 0.4
    mask[:, :, 0, 0] = True
    return mask


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_mask_of_ones_gives_the_unmasked_images_bit_for_bit(name, norm):
    rule = build_step_rule(name, EPS[norm], **rule_options(name, norm))
    plain = rule.run(variable(), convex_objective(), torch.Generator().manual_seed(3))
    ones = rule.run(variable(), convex_objective(), torch.Generator().manual_seed(3), mask=torch.ones(4, 1, 1, 1))
    assert torch.equal(plain, ones)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_entries_outside_the_mask_never_change_and_the_rest_stays_in_the_ball(name, norm):
    rule = build_step_rule(name, EPS[norm], **rule_options(name, norm))
    originals, mask, objective = variable(), region(), convex_objective()
    adversarial = rule.run(originals, objective, torch.Generator().manual_seed(3), mask=mask)
    outside = ~mask.expand_as(originals)
    assert torch.equal(adversarial[outside], originals[outside])
    delta = (adversarial - originals).flatten(1)
    sizes = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert (sizes <= EPS[norm] + 1e-6).all() and (sizes > 0).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (objective(adversarial) > objective(originals)).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_early_stopping_honours_the_mask_of_the_rows_still_iterated(norm):
    objective, originals, mask = convex_objective(), variable(), region()
    start = objective(originals)
    rule = StepRule(EPS[norm], EPS[norm] / 4, steps=6, norm=norm, early_stop=True)
    adversarial = rule.run(originals, objective, done=lambda x, rows: objective(x) > start[rows] * 1.01, mask=mask)
    outside = ~mask.expand_as(originals)
    assert torch.equal(adversarial[outside], originals[outside])


def test_a_mask_must_have_one_row_per_variable_row_and_broadcast():
    rule = build_step_rule("ifgsm", 4 / 255, steps=2)
    with pytest.raises(ValueError, match="one row per variable row"):
        rule.run(variable(), convex_objective(), mask=torch.ones(1, 1, 6, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        rule.run(variable(), convex_objective(), mask=torch.ones(4, 1, 6, 4))


def test_box_crops_are_the_resized_slices_and_their_gradient_stays_in_the_boxes():
    frames = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0), requires_grad=True)
    boxes = [[0, 2, 3, 12, 19], [1, 20, 0, 30, 20], [0, 15, 5, 22, 9]]
    crops = BoxCrops(boxes, (8, 4))
    inputs = crops(frames)
    assert inputs.shape == (3, 3, 8, 4) and crops.owners.tolist() == [0, 1, 0]
    for row, (frame, x1, y1, x2, y2) in enumerate(boxes):
        expected = F.interpolate(frames[frame : frame + 1, :, y1:y2, x1:x2], size=(8, 4), mode="bilinear", antialias=True)
        assert torch.equal(inputs[row], expected[0])
    (grad,) = torch.autograd.grad(inputs.square().sum(), frames)
    inside = crops.mask(frames).bool().expand_as(frames)
    assert (grad[~inside] == 0).all() and (grad[inside] != 0).float().mean() > 0.9
    by_hand = torch.zeros(2, 1, 20, 30)
    by_hand[0, :, 3:19, 2:12] = by_hand[1, :, 0:20, 20:30] = by_hand[0, :, 5:9, 15:22] = 1
    assert torch.equal(crops.mask(frames), by_hand)


def test_box_crops_refuse_empty_boxes_and_boxes_outside_the_frames():
    with pytest.raises(ValueError, match="x1 < x2"):
        BoxCrops([[0, 5, 5, 5, 9]], (8, 4))
    with pytest.raises(ValueError, match="outside the frames"):
        BoxCrops([[0, 5, 5, 40, 9]], (8, 4))(torch.rand(1, 3, 20, 30))


class TinyEmbedder(nn.Module):
    """A fixed random linear embedding of 8x4 crops."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 8 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def test_the_objective_through_box_crops_is_each_frames_sum_of_its_crops_losses():
    frames = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    crops = BoxCrops([[0, 2, 3, 12, 19], [1, 20, 0, 30, 20], [0, 15, 5, 22, 9]], (8, 4))
    model, loss = TinyEmbedder(), NonTargetedMetricLoss()
    references = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    own = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    seen = {}

    class Recorder:  # a step rule that only records the objective at the start
        def run(self, images, objective, generator=None, done=None, mask=None):
            seen["values"] = objective(images)
            return images

    MetricAttack([model], [loss], Recorder()).perturb(frames, [references], own, input_map=crops)
    per_crop = loss(model(crops(frames)), references, own_mask=own)  # (3,)
    assert torch.allclose(seen["values"], torch.stack([per_crop[0] + per_crop[2], per_crop[1]]))


def test_pgd_on_the_pixels_of_two_boxes_moves_their_features_and_nothing_else():
    frames = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(4))
    crops = BoxCrops([[0, 1, 2, 9, 20], [0, 18, 4, 30, 22]], (8, 4))
    model, loss = TinyEmbedder(), NonTargetedMetricLoss()
    with torch.no_grad():
        clean = model(crops(frames))  # each crop pushed away from its own clean feature (zero gradient there:
    attack = MetricAttack([model], [loss], build_step_rule("pgd", 8 / 255, steps=5))  # PGD starts at random)
    own = torch.eye(2, dtype=torch.bool)
    adversarial = attack.perturb(frames, [clean], own, generator=torch.Generator().manual_seed(0), input_map=crops, mask=crops.mask(frames))
    outside = ~crops.mask(frames).bool().expand_as(frames)
    assert torch.equal(adversarial[outside], frames[outside])
    assert (adversarial - frames).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        moved = (model(crops(adversarial)) - clean).norm(dim=1)
    assert (moved > 0.05 * clean.norm(dim=1)).all()
    assert attack.gradient_passes == 5 * 2  # two crops per step


def test_a_goal_does_not_combine_with_an_input_map():
    crops = BoxCrops([[0, 0, 0, 4, 8]], (8, 4))
    attack = MetricAttack([TinyEmbedder()], [NonTargetedMetricLoss()], build_step_rule("ifgsm", 4 / 255, steps=2))
    with pytest.raises(ValueError, match="input_map"):
        attack.perturb(torch.rand(1, 3, 8, 4), [torch.zeros(1, 6)], torch.ones(1, 1, dtype=torch.bool),
                       goal=lambda features, rows: torch.zeros(len(rows), dtype=torch.bool), input_map=crops)  # fmt: skip
