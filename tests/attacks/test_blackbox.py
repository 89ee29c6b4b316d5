"""The query-limited black-box attack: it sees rankings only, respects eps and budget, and budget 0 is clean."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metricattack.attacks.blackbox import RankingOracle, SquareRankAttack, rank_score, square_side
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance
from metricattack.experiment.registry import check_setting
from campaigns import attack, evaluate_outcome, make_campaign


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0,
                    quantize_images=False, progress=False)  # fmt: skip


class Spy(nn.Module):
    """Wraps a model: records whether autograd could reach it, and fails if backward ever runs through it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.spec = model.spec
        self.grad_seen: list[bool] = []
        self.hook = self.model.register_full_backward_hook(self._refuse_backward)

    @staticmethod
    def _refuse_backward(*_):
        raise AssertionError("backward reached the system's model")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.grad_seen.append(torch.is_grad_enabled() or images.requires_grad)
        return self.model(images)


def test_rank_score_by_hand():
    returned = torch.tensor([[5, 7, 5, 1], [2, 2, 2, 2], [9, 9, 9, 9]])
    true = torch.tensor([5, 3, 9])
    expected = [1 / 1 + 1 / 2, 0.0, 1 + 1 / torch.log2(torch.tensor(3.0)).item() + 1 / 2 + 1 / torch.log2(torch.tensor(5.0)).item()]
    torch.testing.assert_close(rank_score(returned, true), torch.tensor(expected, dtype=torch.float64))


def test_square_side_follows_the_halving_schedule():
    # 64 x 32 pixels, p 0.1: sqrt(204.8) = 14.3 -> 14; after iteration 10: p 0.05 -> 10; after 50: 0.025 -> 7.
    assert [square_side(i, 64, 32) for i in (1, 10, 11, 50, 51)] == [14, 14, 10, 10, 7]
    assert square_side(100_000, 64, 32) >= 1


@pytest.fixture
def spy(tiny_model):
    spy = Spy(tiny_model)
    yield spy
    spy.hook.remove()  # the model is shared with other tests
    tiny_model.zero_grad(set_to_none=True)


def test_the_spy_would_catch_a_backward_pass(spy, campaign):
    with pytest.raises(AssertionError, match="backward reached"):
        spy(campaign.query.images[:2].float().div(255).requires_grad_(True)).sum().backward()
    assert spy.grad_seen == [True]


def test_the_oracle_returns_only_ranked_identities_without_autograd(tiny_model, spy, campaign):
    gallery_features = campaign.clean_features(campaign.targets[0])[1]
    oracle = RankingOracle(spy, gallery_features, campaign.gallery.pids, top_k=5)
    images = campaign.query.images[:4].float().div(255).requires_grad_(True)
    returned = oracle(images)
    assert returned.dtype == torch.int64 and not returned.requires_grad and returned.shape == (4, 5)
    distances = pairwise_distance(tiny_model(images.detach()), gallery_features, metric="euclidean", normalize=True)
    expected = campaign.gallery.pids[distances.argsort(dim=1)[:, :5]]
    assert torch.equal(returned, expected)
    assert spy.grad_seen == [False] and oracle.queries_used == 4


def test_the_attack_never_runs_backward_on_the_system(tiny_model, spy, campaign):
    tiny_model.zero_grad(set_to_none=True)
    oracle = RankingOracle(spy, campaign.clean_features(campaign.targets[0])[1], campaign.gallery.pids)
    images = campaign.query.images[:6].float().div(255)
    SquareRankAttack(8 / 255, budget=15).run(images, campaign.query.pids[:6], oracle, torch.Generator().manual_seed(0))
    assert spy.grad_seen and not any(spy.grad_seen)
    assert all(p.grad is None for p in tiny_model.parameters())


def test_eps_budget_and_progress_against_a_system_given_as_a_plain_function():
    # A "system" that ranks identity 1 lower the darker the image is (first above mean 0.51, out of its top 8 below
    # 0.496): the attack only ever sees these lists, and must darken the images to push identity 1 out.
    calls = []
    thresholds = torch.linspace(0.51, 0.496, 8)

    def system(images):
        calls.append(len(images))
        position = (images.flatten(1).mean(dim=1)[:, None] < thresholds).sum(dim=1)
        lists = torch.arange(2, 10).repeat(len(images), 1)
        for row, place in enumerate(position.tolist()):
            if place < 8:
                lists[row, place] = 1
        return lists

    images = torch.full((8, 3, 8, 4), 0.512)
    true = torch.ones(8, dtype=torch.long)
    eps = 8 / 255
    adversarial, used = SquareRankAttack(eps, budget=300).run(images, true, system, torch.Generator().manual_seed(1))
    assert (adversarial - images).abs().max() <= eps + 1e-7
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.all(used <= 300) and sum(calls) == int(used.sum())
    scores = rank_score(system(adversarial), true)
    assert torch.all(scores < rank_score(system(images), true))
    assert torch.all(used[scores == 0] < 300) and torch.all(used[scores > 0] == 300)  # solved images stop querying


def test_budget_zero_is_the_clean_result(campaign):
    named = campaign.targets[0]
    outcome = attack(campaign, AttackSetting("blackbox", 8, "query", steps=0))
    assert torch.equal(outcome.query_images, campaign.query.images[outcome.query_indices].float() / 255)
    attacked, _ = evaluate_outcome(campaign, outcome, named)
    clean = campaign.clean_metrics(named).as_dict()
    assert {key: attacked[key] for key in clean} == clean
    assert attacked["top10_overlap"] == 1.0 and attacked["rank1_changed"] == 0.0

def test_a_budget_lowers_the_rank_score_and_stays_in_the_ball(campaign):
    named = campaign.targets[0]
    eps = 8
    outcome = attack(campaign, AttackSetting("blackbox", eps, "query", steps=60))
    originals = campaign.query.images[outcome.query_indices].float() / 255
    assert (outcome.query_images - originals).abs().max() <= eps / 255 + 1e-6
    oracle = RankingOracle(named.model, campaign.clean_features(named)[1], campaign.gallery.pids)
    pids = campaign.query.pids[outcome.query_indices]
    assert rank_score(oracle(outcome.query_images), pids).mean() < rank_score(oracle(originals), pids).mean()
    again = attack(campaign, AttackSetting("blackbox", eps, "query", steps=60))
    assert torch.equal(again.query_images, outcome.query_images)  # seeded


@pytest.mark.parametrize(
    "setting,message",
    [
        (AttackSetting("blackbox", 8, side="gallery"), "expected --side query"),
        (AttackSetting("blackbox", 8, side="query", goal="targeted"), "expected --side query"),
        (AttackSetting("blackbox", 8, side="query", steps=-1), "must be an integer >= 0"),
        (AttackSetting("blackbox", 8, side="query", norm="l2"), "L-inf attack"),
        (AttackSetting("blackbox", 8, side="query", step_size=2), "does not take --step-size"),
    ],
)
def test_bad_blackbox_settings(setting, message):
    with pytest.raises(InputError, match=message):
        check_setting(setting)
