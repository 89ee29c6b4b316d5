"""The wearable-pattern attack on a tiny scene: the loss goes down, an empty print changes nothing,
scoring matches hand-built rankings, and the same seed gives the same run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from metricattack.data.synthetic.compositor import composite
from metricattack.data.synthetic.texture import Texture
from metricattack.errors import InputError
from metricattack.experiment.setting import NamedModel
from metricattack.models.features import FeatureSet
from metricattack.wearing.objective import References, WearObjective
from metricattack.wearing.optimise import frozen, optimise_pattern
from metricattack.wearing.printing import PRINTABLE
from metricattack.wearing.renders import REFERENCES, UNSEEN, rendered_images, training_batch
from metricattack.wearing.run import WearRun, run_wear
from metricattack.wearing.scoring import render_features, score_renders
from metricattack.wearing.setting import WearSetting
from metricattack.wearing.wearers import choose_target, choose_wearers, synthetic_config
from conftest import TINY

WEARER = TINY.train_ids + 1  # the first test identity
SETTING = WearSetting(train_cameras=(1, 2), test_cameras=(3,), steps=25, renders=4, lr=0.3, tv_weight=0.0,
                      print_weight=0.0, texture_size=(8, 8), eval_renders=2, references=4, random_cameras=0)  # fmt: skip


def references_for(model, setting: WearSetting) -> References:
    """The wearer's clean features in the training cameras, and two other identities' as impostors."""
    images, cameras = rendered_images(TINY, WEARER, None, setting.train_cameras, 2, 0, REFERENCES)
    others = torch.cat([rendered_images(TINY, WEARER + n, None, (1, 2, 3), 2, 0, REFERENCES)[0] for n in (1, 2)])
    cpu = torch.device("cpu")
    return References(render_features(model, images, cpu), cameras, impostors=render_features(model, others, cpu))


def test_the_evading_margin_by_hand():
    # renders 0 and 1 (camera 0) and 2 (camera 1) on a line; impostors at 3.0 and 10.0 (plain euclidean)
    features = torch.tensor([[0.0], [0.5], [2.0]])
    references = References(torch.zeros(1, 1), torch.tensor([0]), impostors=torch.tensor([[3.0], [10.0]]))
    objective = WearObjective("evade", "euclidean", False, torch.tensor(PRINTABLE), 0.0, 0.0)
    margins = objective.metric_loss(features, torch.tensor([0, 0, 1]), references)
    # render 0: own across cameras 2.0 (render 2), nearest impostor 3.0 -> (2 - 3) / 3; render 1: 1.5 vs 2.5;
    # render 2: 1.5 (render 1) vs 1.0 -> (1.5 - 1) / 1 = 0.5, capped at the margin 0.1
    assert torch.allclose(margins, torch.tensor([-1 / 3, -1.0 / 2.5, 0.1]))


def test_the_impersonation_margin_by_hand():
    # renders 0 and 1 (camera 0) and 2 (camera 1) on a line; the target at 5.5; five others (plain euclidean)
    features = torch.tensor([[0.0], [-1.0], [4.0]])
    references = References(torch.zeros(1, 1), torch.tensor([0]), target=torch.tensor([[5.5]]),
                            impostors=torch.tensor([[1.5], [2.0], [2.5], [6.0], [7.0]]))  # fmt: skip
    objective = WearObjective("impersonate", "euclidean", False, torch.tensor(PRINTABLE), 0.0, 0.0)
    margins = objective.metric_loss(features, torch.tensor([0, 0, 1]), references)
    # render 0: target 5.5; others 1.5, 2, 2.5, 4 (render 2; render 1 is in its camera), 6, 7 -> 5th 6: (6 - 5.5) / 6;
    # render 1: target 6.5; others 2.5, 3, 3.5, 5 (render 2), 7, 8 -> 5th 7: (7 - 6.5) / 7;
    # render 2: target 1.5; others 4, 5 (renders 0, 1), 2.5, 2, 1.5, 2, 3 -> 5th 3: (3 - 1.5) / 3 = 0.5, capped at 0.1
    assert torch.allclose(margins, torch.tensor([0.5 / 6, 0.5 / 7, 0.1]))


def test_the_loss_goes_down_on_a_tiny_scene(tiny_model):
    objective = WearObjective("evade", "euclidean", True, torch.tensor(PRINTABLE), 0.0, 0.0)
    references = references_for(tiny_model, SETTING)
    batch, cameras = training_batch(TINY, WEARER, "top", SETTING.train_cameras, 6, seed=99, step=0)  # renders never optimised on

    def loss_of(texture: torch.Tensor) -> float:
        with frozen(tiny_model), torch.no_grad():
            return objective(texture, tiny_model(composite(texture, batch)), cameras, references)[0].item()

    flags = [p.requires_grad for p in tiny_model.parameters()]
    optimised = optimise_pattern(tiny_model, objective, references, TINY, WEARER, replace(SETTING, area="top"),
                                 seed=0, device=torch.device("cpu"), progress=False)  # fmt: skip
    start = torch.sigmoid(torch.randn((3, 8, 8), generator=torch.Generator().manual_seed(0)))  # optimise_pattern's start
    assert loss_of(optimised.texture) < loss_of(start) - 0.05
    assert optimised.gradient_passes == SETTING.steps and optimised.renders == SETTING.steps * SETTING.renders
    assert [p.requires_grad for p in tiny_model.parameters()] == flags  # restored


def test_an_all_zero_area_print_changes_nothing(tiny_model, tiny_data):
    empty = Texture(np.random.default_rng(0).random((8, 8, 3)), area=(0.0, 0.0, 0.0, 0.0))
    clean, cameras = rendered_images(TINY, WEARER, None, (1, 2, 3), 2, 0, UNSEEN)
    printed, same_cameras = rendered_images(TINY, WEARER, empty, (1, 2, 3), 2, 0, UNSEEN)
    assert torch.equal(clean, printed) and torch.equal(cameras, same_cameras)
    gallery = FeatureSet(torch.randn(10, 8), torch.arange(10) + WEARER - 2, torch.arange(10) % 3)
    features = torch.randn(len(clean), 8)
    assert score_renders(features, cameras, WEARER, gallery, "euclidean", False, WEARER + 1) == score_renders(
        features.clone(), same_cameras, WEARER, gallery, "euclidean", False, WEARER + 1)


def test_scoring_by_hand():
    # the wearer (5): renders at (0, 0) in camera 0 and (1, 0) in camera 1; the gallery: the target (7) at
    # (0, 0.5) in camera 1, and the wearer's own data-set image at (0.02, 0) in camera 1, which his renders replace
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    gallery = FeatureSet(torch.tensor([[0.0, 0.5], [0.02, 0.0]]), torch.tensor([7, 5]), torch.tensor([1, 1]))
    scores = score_renders(features, torch.tensor([0, 1]), 5, gallery, "euclidean", False, target=7)
    # render 0: target (0.5) before render 1 (1.0): first match at rank 2 (AP 1/2); render 1: render 0 (1.0)
    # before the target (1.118): rank 1 (AP 1). Kept, the data-set image would be render 0's rank 1.
    assert scores["rank1"] == 0.5 and scores["match_rank"] == 1.5 and scores["mAP"] == pytest.approx(0.75)
    # as the target: render 0's nearest is the target; render 1 shares the target's camera: skipped
    assert scores["target_rank1"] == 1.0 and scores["target_rank5"] == 1.0


def test_wearers_and_targets(tiny_data, tiny_root):
    assert synthetic_config(tiny_root) == TINY
    assert choose_wearers(tiny_data, None, 2) == [WEARER, WEARER + 1]
    with pytest.raises(InputError, match="--pid 1: not a test identity"):
        choose_wearers(tiny_data, 1, 2)
    target = choose_target(tiny_data, WEARER, None, 0, (1, 2, 3))
    assert target != WEARER and target == choose_target(tiny_data, WEARER, None, 0, (1, 2, 3))
    with pytest.raises(InputError, match="--target-pid"):
        choose_target(tiny_data, WEARER, WEARER, 0, (1, 2, 3))


def test_same_seed_same_run(tiny_model, tiny_data, tmp_path):
    setting = WearSetting(goal="impersonate", train_cameras=(1,), test_cameras=(2, 3), steps=2, renders=2,
                          texture_size=(6, 6), eval_renders=2, references=2)  # fmt: skip
    records = []
    for name in ("a", "b"):
        run = WearRun(tiny_data, TINY, NamedModel("tiny", tiny_model), setting, tmp_path / name, [WEARER], progress=False)
        records.append(run_wear(run))
    timeless = [[{k: v for k, v in row.items() if "seconds" not in k} for row in record["results"]] for record in records]
    assert timeless[0] == timeless[1]
    assert (tmp_path / "a" / "pattern_13.png").read_bytes() == (tmp_path / "b" / "pattern_13.png").read_bytes()
