"""Campaigns through the deployed pipeline: the attack through flip averaging, a row per pipeline, and the
ranking-damage and perceptibility columns checked against direct computations."""

from __future__ import annotations

import pytest
import torch

from metricattack.attacks.attack import MetricAttack
from metricattack.experiment.chunks import AttackedSide
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.data.images import quantize
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import build_step_rule
from metricattack.evaluation import evaluate_ranking
from metricattack.evaluation.pipeline import PLAIN, FlipAverage, Pipeline
from metricattack.evaluation.rerank import k_reciprocal_distances
from metricattack.models import build_model
from campaigns import attack, evaluate_outcome, make_campaign, run

DEPLOYED = Pipeline(flip=True)
PIPELINES = (DEPLOYED, PLAIN, Pipeline(rerank=True), Pipeline(query_expansion=2))


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0, progress=False, pipelines=PIPELINES)


def labels(campaign):
    return campaign.query.pids, campaign.gallery.pids, campaign.query.camids, campaign.gallery.camids


def test_the_attack_differentiates_through_flip_averaging(campaign, tiny_model):
    assert isinstance(campaign.sources[0].model, FlipAverage) and campaign.sources[0].model.model is tiny_model
    outcome = attack(campaign, AttackSetting("fgsm", 5.0, "gallery"))
    # The same FGSM step written out: gradients of the flip-averaged features, references flip-averaged too.
    flipped = FlipAverage(tiny_model)
    with torch.no_grad():
        references = flipped(campaign.query.images.float() / 255)
    images = campaign.gallery.images[outcome.gallery_indices].float() / 255
    own = campaign.gallery.pids[outcome.gallery_indices][:, None] == campaign.query.pids[None, :]
    spec = tiny_model.spec
    metric_attack = MetricAttack([flipped], [NonTargetedMetricLoss("sqeuclidean", spec.normalize)], build_step_rule("fgsm", 5 / 255))
    expected = torch.cat([quantize(metric_attack.perturb(images[s : s + 16], [references], own[s : s + 16])) for s in range(0, len(images), 16)])
    torch.testing.assert_close(outcome.gallery_images, expected)
    plain = make_campaign(campaign.data, [NamedModel("tiny", tiny_model)], [NamedModel("tiny", tiny_model)], torch.device("cpu"),
                     batch_size=16, progress=False)  # fmt: skip
    assert not torch.equal(attack(plain, AttackSetting("fgsm", 5.0, "gallery")).gallery_images, outcome.gallery_images)


def test_a_row_per_pipeline_each_equal_to_a_direct_evaluation(campaign, tiny_model):
    outcome, rows = run(campaign, AttackSetting("fgsm", 5.0, "gallery"))
    assert [row["pipeline"] for row in rows] == ["flip", "plain", "rerank", "qe2"]
    bare = tiny_model.eval()
    with torch.no_grad():
        query = bare(campaign.query.images.float() / 255)
        gallery = bare(campaign.gallery.images.float() / 255)
        gallery[outcome.gallery_indices] = bare(outcome.gallery_images)
    spec = tiny_model.spec
    reranked = evaluate_ranking(k_reciprocal_distances(query, gallery, spec.metric, spec.normalize), *labels(campaign))
    assert rows[2]["mAP"] == pytest.approx(reranked.mAP, abs=1e-6)
    clean_query, clean_gallery = campaign.clean_features(campaign.targets[0], flip=False)
    clean_reranked = evaluate_ranking(k_reciprocal_distances(clean_query, clean_gallery, spec.metric, spec.normalize), *labels(campaign))
    assert campaign.clean_result(campaign.targets[0], PIPELINES[2])["mAP"] == pytest.approx(clean_reranked.mAP, abs=1e-6)
    for row in rows:
        assert row["clean_match_rank_mean"] == campaign.clean_result(campaign.targets[0], Pipeline.parse(row["pipeline"]))["match_rank_mean"]
        assert row["match_rank_mean"] > row["clean_match_rank_mean"] and 0 <= row["top10_overlap"] < 1
        assert row["perturbation_linf"] == pytest.approx(5.0)  # every FGSM image moves some pixel by the full eps
        assert 0 < row["ssim"] < 1 and row["psnr"] > 20
    assert len({row["perturbation_l2"] for row in rows}) == 1  # one set of images, measured once


def test_an_attack_that_changed_nothing_did_no_damage(campaign):
    outcome = attack(campaign, AttackSetting("fgsm", 5.0, "query"))
    outcome.query = AttackedSide.from_images("query", outcome.query_indices, campaign.query.images[outcome.query_indices].float() / 255)
    for pipeline in PIPELINES:
        result, _ = evaluate_outcome(campaign, outcome, campaign.targets[0], pipeline)
        clean = campaign.clean_result(campaign.targets[0], pipeline)
        assert result["mAP"] == pytest.approx(clean["mAP"])
        assert result["match_rank_mean"] == pytest.approx(clean["match_rank_mean"])
        assert result["top10_overlap"] == 1.0 and result["rank1_changed"] == 0.0
    assert outcome.perceptibility == {"perturbation_linf": 0.0, "perturbation_l2": 0.0, "psnr": None, "ssim": pytest.approx(1.0)}


def test_ranking_lists_follow_the_deployed_pipeline(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    reranking = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, progress=False,
                         pipelines=[Pipeline(rerank=True)])  # fmt: skip
    outcome, _ = run(reranking, AttackSetting("fgsm", 3.0, "gallery"))
    query, gallery = outcome.features["tiny"]
    spec = tiny_model.spec
    distances = k_reciprocal_distances(query, gallery, spec.metric, spec.normalize)
    assert torch.equal(outcome.rankings["tiny"].top, reranking.summarize(distances).top)


def test_a_source_given_to_run_is_deployed_like_the_campaigns_own(tiny_data, tiny_model):
    """A plan's transfer source, handed to ``run``, gets the campaign's precision and flip averaging and eval mode:
    its attack equals the one of a campaign built with it as its own source."""
    torch.manual_seed(1)
    other = NamedModel("other", build_model("compact", num_classes=tiny_data.num_train_pids, input_size=(64, 32)).train())
    victim = NamedModel("tiny", tiny_model)
    options = dict(batch_size=16, seed=0, progress=False, pipelines=(DEPLOYED,), amp="bf16")
    setting = AttackSetting("ifgsm", 4.0, "gallery", steps=2)
    given = attack(make_campaign(tiny_data, [victim], [victim], torch.device("cpu"), **options), setting, sources=[other])
    own = attack(make_campaign(tiny_data, [other], [victim], torch.device("cpu"), **options), setting)
    assert torch.equal(given.gallery_images, own.gallery_images)
    plain = attack(make_campaign(tiny_data, [other], [victim], torch.device("cpu"), **{**options, "amp": "off"}), setting)
    assert not torch.equal(plain.gallery_images, own.gallery_images)  # the comparison can tell bf16 from float32
