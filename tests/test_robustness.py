"""Sanity checks of a robust evaluation: they pass on a trained model and flag the broken ones they exist for."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from metricattack.experiment.campaign import Campaign
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.evaluation import evaluate_ranking, pairwise_distance
from metricattack.experiment.plans import Job
from metricattack.experiment.sanity import ZeroBallSetting, chance_map, collapse_check, convergence_check, embedding_shift, eps_zero_check, expected_random_ap, gradient_check, large_eps_check, monotone_check, sanity_checks, transfer_check
from metricattack.evaluation.distance import paired_distance
from metricattack.experiment.sweep import run_sweep
from campaigns import attack, run
from campaigns import make_campaign as campaign_of


class Wrapped(nn.Module):
    """A model built around a trained one (keeps its spec); ``how`` says what it does to inputs or features."""

    def __init__(self, inner: nn.Module, how: str) -> None:
        super().__init__()
        self.inner, self.how, self.spec = inner, how, inner.spec

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.how == "masked":  # rounding inside the model: the input gradient is zero almost everywhere
            return self.inner(torch.round(images * 255) / 255)
        features = self.inner(images)
        if self.how == "constant":
            return features * 0 + 1
        if self.how == "collapsed":  # every embedding a tiny wiggle around one point
            return 1 + 1e-3 * features
        if self.how == "noisy":  # randomness at test time: eps 0 no longer reproduces the clean features
            return features + 0.5 * torch.randn_like(features)
        raise ValueError(self.how)


def make_campaign(data, *models: NamedModel, quantize: bool = True) -> Campaign:
    return campaign_of(data, [models[0]], list(models), torch.device("cpu"), batch_size=16, seed=0,
                       quantize_images=quantize, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return NamedModel("tiny", tiny_model)


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny):
    return make_campaign(tiny_data, tiny)


def wrapped(tiny_data, tiny_model, how: str) -> tuple[Campaign, NamedModel]:
    named = NamedModel(how, Wrapped(tiny_model, how).eval())
    return make_campaign(tiny_data, named), named


# --- eps 0 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["gallery", "query", "both"])
def test_a_ball_of_radius_zero_returns_the_clean_images_bit_for_bit(campaign, side):
    outcome = attack(campaign, ZeroBallSetting("pgd", 0.0, side, steps=3, restarts=2))
    for part in {"both": ("query", "gallery")}.get(side, (side,)):
        indices = getattr(outcome, f"{part}_indices")
        clean = getattr(campaign, part).images[indices].float() / 255
        assert len(indices) > 0 and torch.equal(getattr(outcome, f"{part}_images"), clean)


def test_eps_zero_gives_the_clean_metrics_exactly(campaign, tiny):
    check = eps_zero_check(campaign, tiny)
    assert check["passed"] is True and check["mAP"] == campaign.clean_metrics(tiny).mAP
    assert check["embedding_shift"] < 1e-5


def test_eps_zero_flags_a_model_with_randomness_at_test_time(tiny_data, tiny_model):
    torch.manual_seed(0)
    campaign, named = wrapped(tiny_data, tiny_model, "noisy")
    check = eps_zero_check(campaign, named)
    assert check["passed"] is False and check["mAP"] != check["clean_mAP"]


# --- chance -----------------------------------------------------------------------------------
def brute_force_ap(num_valid: int, num_matches: int) -> float:
    """Mean standard AP over every placement of the matches among the valid ranks."""
    values = []
    for ranks in itertools.combinations(range(1, num_valid + 1), num_matches):
        values.append(sum((i + 1) / r for i, r in enumerate(ranks)) / num_matches)
    return sum(values) / len(values)


@pytest.mark.parametrize("num_valid,num_matches", [(1, 1), (2, 1), (5, 2), (7, 3), (9, 9), (10, 1)])
def test_expected_random_ap_matches_every_placement(num_valid, num_matches):
    value = expected_random_ap(torch.tensor([num_valid]), torch.tensor([num_matches])).item()
    assert value == pytest.approx(brute_force_ap(num_valid, num_matches), abs=1e-12)


def test_chance_map_is_the_mean_map_of_random_rankings(campaign):
    generator = torch.Generator().manual_seed(1)
    labels = (campaign.query.pids, campaign.gallery.pids, campaign.query.camids, campaign.gallery.camids)
    shape = (len(campaign.query.pids), len(campaign.gallery.pids))
    draws = [evaluate_ranking(torch.rand(shape, generator=generator), *labels).mAP for _ in range(400)]
    assert chance_map(campaign) == pytest.approx(sum(draws) / len(draws), abs=0.01)


# --- large eps and the gradient ---------------------------------------------------------------
def test_a_trained_model_passes_large_eps_and_gradient(campaign, tiny):
    chance = chance_map(campaign)
    large = large_eps_check(campaign, tiny, chance)
    assert large["passed"] is True and large["mAP"] <= large["bound"] < campaign.clean_metrics(tiny).mAP
    gradient = gradient_check(campaign, tiny)
    assert gradient["passed"] is True and gradient["share_zero"] == 0 and gradient["images"] > 0


def test_a_gradient_masking_model_is_flagged(tiny_data, tiny_model):
    campaign, named = wrapped(tiny_data, tiny_model, "masked")
    assert gradient_check(campaign, named)["share_zero"] == 1.0
    large = large_eps_check(campaign, named, chance_map(campaign))
    assert large["passed"] is False and large["mAP"] == campaign.clean_metrics(named).mAP  # nothing moved


def test_a_constant_model_is_flagged_by_gradient_and_collapse(tiny_data, tiny_model):
    campaign, named = wrapped(tiny_data, tiny_model, "constant")
    assert gradient_check(campaign, named)["passed"] is False
    collapse = collapse_check(campaign, named, None, None)
    assert collapse["passed"] is False and collapse["mean_cosine"] == pytest.approx(1.0)


def test_a_collapsed_model_is_flagged_and_a_trained_one_is_not(tiny_data, tiny_model, campaign, tiny):
    collapsed_campaign, collapsed = wrapped(tiny_data, tiny_model, "collapsed")
    assert collapse_check(collapsed_campaign, collapsed, None, None)["passed"] is False
    assert gradient_check(collapsed_campaign, collapsed)["passed"] is True  # gradients alone would not tell
    trained = collapse_check(campaign, tiny, 0.5, "some-key")
    assert trained["passed"] is True
    features = campaign.clean_features(tiny)[1]
    assert trained["mean_pair_distance"] > 0 and trained["relative_shift"] == pytest.approx(0.5 / trained["mean_pair_distance"])
    assert -1 < trained["mean_cosine"] < 0.9 and len(features) > 2


# --- embedding shift ----------------------------------------------------------------------------
def test_embedding_shift_is_the_mean_distance_moved_by_the_attacked_images(campaign, tiny, tiny_model):
    outcome, _ = run(campaign, AttackSetting("ifgsm", 4.0, "both", steps=2))
    clean_query, clean_gallery = campaign.clean_features(tiny)
    distances = []
    for images, indices, clean in ((outcome.query_images, outcome.query_indices, clean_query),
                                   (outcome.gallery_images, outcome.gallery_indices, clean_gallery)):  # fmt: skip
        with torch.no_grad():
            adversarial = tiny_model(images)
        for row, index in enumerate(indices.tolist()):
            distances.append(pairwise_distance(adversarial[row : row + 1], clean[index : index + 1], "euclidean", True).item())
    assert embedding_shift(campaign, outcome, tiny) == pytest.approx(sum(distances) / len(distances), rel=1e-4)


# --- checks on records --------------------------------------------------------------------------
def row(key: str, mAP: float, source: str = "m", eps: float = 8, steps: int = 50, series: str | None = None, **extra) -> dict:
    return {"key": key, "attack": "pgd", "norm": "linf", "side": "gallery", "goal": "untargeted", "restarts": 5,
            "target_pid": None, "eps": eps, "steps": steps, "source": source, "target": "m", "mAP": mAP,
            **({"series": series} if series else {}), **extra}  # fmt: skip


def test_transfer_check_warns_when_transfer_beats_white_box():
    fine = {"results": [row("a", 0.10), row("a-from-default", 0.30, source="default")]}
    masked = {"results": [row("a", 0.50), row("a-from-default", 0.30, source="default")]}
    assert transfer_check(fine, "m")["passed"] is True
    flagged = transfer_check(masked, "m")
    assert flagged["passed"] is False and "gradient masking" in flagged["summary"]
    assert transfer_check({"results": [row("a", 0.1)]}, "m")["passed"] is None


def test_monotone_and_convergence_checks():
    curve = [row("e2", 0.6, eps=2), row("e4", 0.4, eps=4), row("e8", 0.2, eps=8), row("s10", 0.3, steps=10, series="convergence")]
    assert monotone_check({"results": curve}, "m")["passed"] is True  # the 10-step row is not on the eps curve
    rising = curve + [row("e16", 0.35, eps=16)]
    assert monotone_check({"results": rising}, "m")["passed"] is False
    converged = curve + [row("s100", 0.195, steps=100, series="convergence")]
    assert convergence_check({"results": converged}, "m")["passed"] is True
    assert convergence_check({"results": curve + [row("s100", 0.1, steps=100)]}, "m")["passed"] is False
    assert convergence_check({"results": curve[:3]}, "m")["passed"] is None


def test_all_checks_through_a_sweep_flag_white_box_weaker_than_transfer(tiny_data, tiny_model, tmp_path):
    """A masked model attacked white-box and by transfer from its unmasked twin: every relevant check fires."""
    masked = NamedModel("masked", Wrapped(tiny_model, "masked").eval())
    campaign = make_campaign(tiny_data, masked)
    setting = AttackSetting("pgd", 8.0, steps=3, restarts=1)
    record = run_sweep(campaign, [setting, Job(setting, source="unmasked")], tmp_path / "run", "test", examples=0,
                       models={"unmasked": NamedModel("unmasked", tiny_model)})  # fmt: skip
    assert [r["key"] for r in record["results"]] == [setting.key, setting.key + "-from-unmasked"]
    assert [r["source"] for r in record["results"]] == ["masked", "unmasked"]
    sanity = sanity_checks(campaign, record, masked, setting.key)
    assert {"gradient", "large_eps", "transfer"} <= set(sanity["failed"])
    assert "eps0" not in sanity["failed"] and sanity["run"] >= 5


@pytest.mark.parametrize("metric,normalize", [("euclidean", True), ("euclidean", False), ("sqeuclidean", False), ("cosine", False)])
def test_paired_distance_is_the_diagonal_of_pairwise_distance(metric, normalize):
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(6, 5, generator=generator, dtype=torch.float64), torch.randn(6, 5, generator=generator, dtype=torch.float64)
    expected = pairwise_distance(first, second, metric, normalize).diagonal()
    assert torch.allclose(paired_distance(first, second, metric, normalize), expected, atol=1e-10)
    assert paired_distance(first, first, metric, normalize).abs().max() < 1e-7  # exactly no shift, no cancellation floor
