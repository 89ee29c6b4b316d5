"""The ranking-margin loss against a hand-worked case, a brute-force loop and finite differences; its saturation and
scale invariance; and its wiring in a campaign (masks, thresholds) against loops over pids and cameras."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.margin import RankingMarginLoss
from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance
from metricattack.experiment.goals import GOAL_RANK, ranking_thresholds
from metricattack.experiment.setting import AttackSetting, NamedModel
from campaigns import attack, make_campaign, run

from .test_losses import METRICS, slow_distance


def slow_margin(adv, refs, own_row, impostor_row, metric, normalize, k, thresholds=None) -> float:
    """The loss of one image, the obvious way: mean over counted matches of min((d - t) / t, 0)."""
    distances = [slow_distance(adv, ref, metric, normalize) for ref in refs]
    impostors = sorted(d for d, is_impostor in zip(distances, impostor_row.tolist()) if is_impostor)
    terms = []
    for j, (distance, own) in enumerate(zip(distances, own_row.tolist())):
        if not own:
            continue
        if thresholds is None:
            if not impostors:
                continue
            threshold = impostors[min(k, len(impostors)) - 1]
        else:
            threshold = float(thresholds[j])
            if math.isinf(threshold):
                continue
        terms.append(min((distance - threshold) / threshold, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


def features(dtype: torch.dtype, seed: int = 0):
    """6 adversarial and 9 reference features (D=5) with masks from pids: a junk reference (-1), a same-camera
    match left out of own, an image without any match and one whose only references are its own (no impostor)."""
    generator = torch.Generator().manual_seed(seed)
    adv = torch.randn(6, 5, generator=generator, dtype=dtype)
    refs = torch.randn(9, 5, generator=generator, dtype=dtype)
    refs[[0, 2, 5, 7]] = adv[:4] + 0.3 * torch.randn(4, 5, generator=generator, dtype=dtype)  # near matches: ahead of impostors
    ref_pids = torch.tensor([1, 1, 2, 2, 2, 3, -1, 4, 4])
    adv_pids = torch.tensor([1, 2, 3, 4, 5, 1])
    own = adv_pids[:, None] == ref_pids
    own[0, 1] = False  # the same camera: not in the ranking
    impostors = (adv_pids[:, None] != ref_pids) & (ref_pids != -1)
    impostors[5] = False  # as if every other reference were junk
    return adv, refs, own, impostors


def test_a_hand_worked_case():
    # One-dimensional features: x = 0; matches at 1 and 3, impostors at 2 and 4 (euclidean distances 1, 2, 3, 4).
    adv = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    refs = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    own = torch.tensor([[True, False, True, False]])
    loss = RankingMarginLoss("euclidean", k=1)
    # k = 1: t = 2; margins (1 - 2) / 2 = -0.5 and (3 - 2) / 2 = +0.5 -> 0 (already behind): mean -0.25.
    value = loss(adv, refs, own, ~own)
    assert value.item() == pytest.approx(-0.25, abs=1e-12)
    # Its gradient: 1/2 d/dx (d_1 / d_2 - 1) with d_1 = 1 - x, d_2 = 2 - x: 1/2 (-d_2 + d_1) / d_2^2 = 1/2 (-1/4) at 0.
    (grad,) = torch.autograd.grad(value.sum(), adv)
    assert grad.item() == pytest.approx(-0.125, abs=1e-9)
    # k = 2: t = 4; margins -0.75 and -0.25: mean -0.5. Fixed thresholds (0.5, -, 6, -): margins +1 -> 0 and -0.5.
    assert RankingMarginLoss("euclidean", k=2)(adv, refs, own, ~own).item() == pytest.approx(-0.5, abs=1e-12)
    fixed = RankingMarginLoss("euclidean", thresholds=torch.tensor([0.5, 9.0, 6.0, 9.0], dtype=torch.float64))
    assert fixed(adv, refs, own).item() == pytest.approx(-0.25, abs=1e-12)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 3, 100])  # 100: more than the impostors, so the farthest one
def test_values_match_a_loop(metric, normalize, dtype, tolerance, k):
    adv, refs, own, impostors = features(dtype)
    values = RankingMarginLoss(metric, normalize, k)(adv, refs, own, impostors)
    expected = [slow_margin(adv[i], refs, own[i], impostors[i], metric, normalize, k) for i in range(len(adv))]
    assert values.shape == (6,) and values.dtype == dtype
    assert values.tolist() == pytest.approx(expected, rel=tolerance, abs=tolerance)
    assert values[4] == 0 and values[5] == 0  # no match; no impostor
    largest = pairwise_distance(adv, refs, metric, normalize).max()  # thresholds on the scale of the distances
    thresholds = torch.rand(9, generator=torch.Generator().manual_seed(1), dtype=dtype) * 2 * largest
    thresholds[3] = math.inf  # a reference without impostors of its own
    fixed = RankingMarginLoss(metric, normalize, k, thresholds)(adv, refs, own, impostors)
    expected = [slow_margin(adv[i], refs, own[i], impostors[i], metric, normalize, k, thresholds) for i in range(len(adv))]
    assert fixed.tolist() == pytest.approx(expected, rel=tolerance, abs=tolerance)
    assert (values <= 0).all() and (values >= -1).all() and (values < 0).any() and (fixed < 0).any()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("fixed", [False, True])
def test_gradient_matches_finite_differences(metric, fixed):
    adv, refs, own, impostors = features(torch.float64, seed=2)
    thresholds = torch.rand(9, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4 if fixed else None
    loss = RankingMarginLoss(metric, normalize=False, k=2, thresholds=thresholds)
    adv.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: loss(a, refs, own, impostors), (adv,), eps=1e-6, atol=1e-7)
    (grad,) = torch.autograd.grad(loss(adv, refs, own, impostors).sum(), adv)
    assert grad.abs().sum() > 0  # some matches are still ahead: the check above compared real slopes


def test_saturates_once_every_match_is_behind_k_impostors():
    # Impostors at distance 0.1-0.4 from x, matches at 3 and 5: with k = 2 (t = 0.2) every margin is positive.
    adv = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    refs = torch.tensor([[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.4], [3.0, 0, 0], [0, 5.0, 0]], dtype=torch.float64)
    own = torch.tensor([[False, False, False, True, True]] * 2)
    for loss in (RankingMarginLoss("euclidean", k=2), RankingMarginLoss("euclidean", thresholds=torch.full((5,), 0.5, dtype=torch.float64))):
        value = loss(adv, refs, own, ~own)
        (grad,) = torch.autograd.grad(value.sum(), adv)
        assert value.tolist() == [0.0, 0.0] and torch.equal(grad, torch.zeros_like(grad))
    # One match pulled in to 0.15 (nearer than the second impostor): it counts again, with a gradient.
    near = refs.clone()
    near[3, 0] = 0.15
    value = RankingMarginLoss("euclidean", k=2)(adv, near, own, ~own)
    (grad,) = torch.autograd.grad(value.sum(), adv)
    assert value.tolist() == pytest.approx([(0.15 - 0.2) / 0.2 / 2] * 2) and grad.abs().sum() > 0


@pytest.mark.parametrize("metric,power", [("euclidean", 1), ("sqeuclidean", 2), ("cosine", 0)])
def test_a_rescaling_of_the_features_changes_nothing(metric, power):
    adv, refs, own, impostors = features(torch.float64, seed=4)
    scale = 3.7
    loss = RankingMarginLoss(metric, k=3)
    assert torch.allclose(loss(adv * scale, refs * scale, own, impostors), loss(adv, refs, own, impostors), rtol=1e-12, atol=1e-12)
    thresholds = torch.rand(9, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 4
    fixed = RankingMarginLoss(metric, thresholds=thresholds)(adv, refs, own)
    scaled = RankingMarginLoss(metric, thresholds=thresholds * scale**power)(adv * scale, refs * scale, own)
    assert torch.allclose(scaled, fixed, rtol=1e-12, atol=1e-12) and (fixed < 0).any()


def test_bad_arguments():
    adv, refs, own, _ = features(torch.float32)
    with pytest.raises(ValueError, match="without thresholds needs an impostor_mask"):
        RankingMarginLoss()(adv, refs, own)
    with pytest.raises(ValueError, match=r"thresholds must be one per reference \(9,\), got \(4,\)"):
        RankingMarginLoss(thresholds=torch.ones(4))(adv, refs, own)
    with pytest.raises(InputError, match="the margin's rank k must be an integer >= 1, got 0"):
        RankingMarginLoss(k=0)
    with pytest.raises(InputError, match="unknown distance 'l1'"):
        RankingMarginLoss("l1")


# ---- in a campaign ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    """The tiny campaign with three gallery images marked junk (pid -1), which no ranking counts."""
    gallery = [s._replace(pid=-1) if i % 7 == 3 and i < 22 else s for i, s in enumerate(tiny_data.gallery)]
    named = NamedModel("tiny", tiny_model)
    return make_campaign(replace(tiny_data, gallery=gallery), [named], [named], torch.device("cpu"), batch_size=16, seed=0, progress=False)


def slow_thresholds(campaign, query_features, gallery_features, k) -> list[float]:
    """Per query, the k-th nearest gallery impostor (another pid, not junk; the farthest if fewer), by a loop."""
    spec = campaign.sources[0].model.spec
    distances = pairwise_distance(query_features.double(), gallery_features.double(), spec.metric, spec.normalize)
    thresholds = []
    for q, (pid, row) in enumerate(zip(campaign.query.pids.tolist(), distances.tolist())):
        impostors = sorted(d for d, g in zip(row, campaign.gallery.pids.tolist()) if g != pid and g != -1)
        thresholds.append(impostors[min(k, len(impostors)) - 1] if impostors else math.inf)
    return thresholds


def test_ranking_thresholds_match_a_loop(campaign):
    named = campaign.sources[0]
    query_features, gallery_features = campaign.clean_features(named)
    for k in (1, 5, GOAL_RANK):
        found = ranking_thresholds(query_features, gallery_features, named.model.spec, campaign.query, campaign.gallery, k, True)
        assert found.tolist() == pytest.approx(slow_thresholds(campaign, query_features, gallery_features, k), rel=1e-5)


def recorded_calls(monkeypatch) -> list[dict]:
    """Every MetricAttack.perturb call's losses and masks, the call itself left as it is."""
    calls, perturb = [], MetricAttack.perturb

    def recording(self, images, references, own_mask, target_mask=None, generator=None, goal=None, impostor_mask=None):
        calls.append({"losses": self.losses, "own": own_mask, "impostors": impostor_mask, "references": references, "size": len(images)})
        return perturb(self, images, references, own_mask, target_mask, generator, goal, impostor_mask)

    monkeypatch.setattr(MetricAttack, "perturb", recording)
    return calls


@pytest.mark.parametrize("side", ["query", "gallery", "both"])
def test_the_campaign_gives_the_margin_the_ranked_pairs_and_thresholds(campaign, monkeypatch, side):
    calls = recorded_calls(monkeypatch)
    outcome = attack(campaign, AttackSetting("apgd", 6.0, side, steps=3, attack_loss="margin"))
    query_pids, query_camids = campaign.query.pids.tolist(), campaign.query.camids.tolist()
    gallery_pids, gallery_camids = campaign.gallery.pids.tolist(), campaign.gallery.camids.tolist()
    query_calls = [c for c in calls if c["losses"][0].thresholds is None]
    gallery_calls = [c for c in calls if c["losses"][0].thresholds is not None]
    assert (len(query_calls) > 0, len(gallery_calls) > 0) == (side != "gallery", side != "query")
    rows = iter(outcome.query_indices.tolist())
    for call in query_calls:  # batches in order: each row a query, each column a gallery image
        for own_row, impostor_row in zip(call["own"].tolist(), call["impostors"].tolist()):
            q = next(rows)
            assert own_row == [g == query_pids[q] and c != query_camids[q] for g, c in zip(gallery_pids, gallery_camids)]
            assert impostor_row == [g != query_pids[q] and g != -1 for g in gallery_pids]
    rows = iter(outcome.gallery_indices.tolist())
    for call in gallery_calls:  # each row a gallery image, each column a query ranking it
        for own_row in call["own"].tolist():
            g = next(rows)
            assert own_row == [q == gallery_pids[g] and c != gallery_camids[g] for q, c in zip(query_pids, query_camids)]
        named = campaign.sources[0]
        expected = slow_thresholds(campaign, call["references"][0], campaign.clean_features(named)[1], GOAL_RANK)
        assert call["losses"][0].thresholds.tolist() == pytest.approx(expected, rel=1e-5)
    if side == "both":  # the gallery ranks against the attacked queries: thresholds from their features
        clean = slow_thresholds(campaign, *campaign.clean_features(campaign.sources[0]), GOAL_RANK)
        assert gallery_calls[0]["losses"][0].thresholds.tolist() != pytest.approx(clean, rel=1e-5)


@pytest.mark.parametrize("side", ["query", "gallery"])
def test_the_margin_objective_lowers_map(campaign, side):
    outcome, rows = run(campaign, AttackSetting("apgd", 6.0, side, steps=10, attack_loss="margin"))
    clean = campaign.clean_metrics(campaign.targets[0]).mAP
    assert rows[0]["mAP"] < 0.8 * clean, (rows[0]["mAP"], clean)
    assert rows[0]["attack_loss"] == "margin" and outcome.setting.key.endswith("-steps10-margin")
    assert outcome.gradient_passes == 10 * outcome.num_attacked
