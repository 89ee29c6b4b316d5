"""``--attack auto``: the exposure it chooses by (against the evaluation's AP and a loop), per image never weaker than
any of its stages, its stages' passes, at least as strong as APGD alone; and the robustness score."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance
from metricattack.evaluation.ranking import evaluate_ranking, valid_mask
from metricattack.experiment.auto import STAGES, AutoEnsemble
from metricattack.experiment.exposure import ImpostorDistances, average_precision
from metricattack.experiment.robustness_score import robustness_score, robustness_scores, score_lines
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.registry import check_setting
from campaigns import attack, evaluate_outcome, make_campaign, run


def test_average_precision_is_the_evaluations_ap_query_by_query():
    generator = torch.Generator().manual_seed(0)
    distances = torch.rand(12, 30, generator=generator)
    query_pids, gallery_pids = torch.randint(0, 4, (12,), generator=generator), torch.randint(-1, 4, (30,), generator=generator)
    query_camids, gallery_camids = torch.randint(0, 2, (12,), generator=generator), torch.randint(0, 2, (30,), generator=generator)
    counted = valid_mask(query_pids, gallery_pids, query_camids, gallery_camids)
    positives = counted & (query_pids[:, None] == gallery_pids[None, :])
    negatives = counted & (query_pids[:, None] != gallery_pids[None, :])
    ours = average_precision(distances, positives, negatives)
    for q in range(12):
        labels = (query_pids[q : q + 1], gallery_pids, query_camids[q : q + 1], gallery_camids)
        if positives[q].any():
            assert float(ours[q]) == pytest.approx(evaluate_ranking(distances[q : q + 1], *labels).mAP, abs=1e-6)
        else:
            assert float(ours[q]) == 0.0


def test_reciprocal_ranks_by_hand():
    ranked = ImpostorDistances.__new__(ImpostorDistances)
    ranked.sorted = torch.tensor([[0.2, 0.5, 0.9, float("inf")], [0.1, 0.3, float("inf"), float("inf")]])
    distances = torch.tensor([[0.6, 0.05], [0.1, 0.4], [0.95, 0.95]])  # three images, two references
    own_valid = torch.tensor([[True, True], [True, False], [False, False]])
    # image 0: reference 0 ranks 2 impostors ahead of it (1/3), reference 1 none (1); image 1: none ahead (1); image 2: no match
    assert ranked.reciprocal_ranks(distances, own_valid).tolist() == pytest.approx([(1 / 3 + 1) / 2, 1.0, 0.0])


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0, progress=False)


def test_impostor_distances_rank_like_a_loop(campaign):
    named = campaign.sources[0]
    queries, gallery = campaign.clean_features(named)
    spec = named.model.spec
    ranked = ImpostorDistances(queries, gallery, spec, campaign.query, campaign.gallery)
    images = gallery[:10] + 0.05 * torch.randn(10, gallery.shape[1], generator=torch.Generator().manual_seed(1))
    distances = pairwise_distance(images, queries, spec.metric, spec.normalize)
    q_pids, q_cams = campaign.query.pids.tolist(), campaign.query.camids.tolist()
    g_pids, g_cams = campaign.gallery.pids.tolist(), campaign.gallery.camids.tolist()
    clean = pairwise_distance(queries, gallery, spec.metric, spec.normalize)
    own_valid = torch.tensor([[q_pids[r] == g_pids[i] and q_cams[r] != g_cams[i] for r in range(len(q_pids))] for i in range(10)])
    expected = []
    for i in range(10):
        terms = []
        for r in own_valid[i].nonzero().flatten().tolist():
            impostors = [float(clean[r, g]) for g in range(len(g_pids)) if g_pids[g] not in (q_pids[r], -1)]
            terms.append(1 / (1 + sum(d < float(distances[i, r]) for d in impostors)))
        expected.append(sum(terms) / len(terms) if terms else 0.0)
    assert ranked.reciprocal_ranks(distances, own_valid).tolist() == pytest.approx(expected, rel=1e-5)


def recorded_candidates(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(images, exposure, goal reached) of every stage's candidates, as the ensemble assessed them."""
    found, keep_better = [], AutoEnsemble._keep_better

    def recording(self, best, best_exposure, reached, candidates, left, references, own, impostors, goal):
        values, hit = self._assess(candidates, left, references, own, impostors, goal)
        found.append((left.clone(), values, hit))
        return keep_better(self, best, best_exposure, reached, candidates, left, references, own, impostors, goal)

    monkeypatch.setattr(AutoEnsemble, "_keep_better", recording)
    return found


@pytest.mark.parametrize("side", ["query", "gallery"])
def test_auto_keeps_per_image_the_most_damaging_stage_and_records_each_stages_passes(campaign, monkeypatch, side):
    """Per image, the kept result has reached the goal if any stage's did, and otherwise the lowest exposure."""
    found = recorded_candidates(monkeypatch)
    kept = []
    perturb = AutoEnsemble.perturb

    def keeping(self, images, references, own_mask, target_mask=None, generator=None, goal=None, impostor_mask=None):
        best = perturb(self, images, references, own_mask, target_mask, generator, goal, impostor_mask)
        everything = torch.arange(len(images))
        kept.append((len(found), *self._assess(best, everything, references, own_mask, impostor_mask, goal)))
        return best

    monkeypatch.setattr(AutoEnsemble, "perturb", keeping)
    outcome = attack(campaign, AttackSetting("auto", 3.0, side, steps=4))
    assert kept and found
    start = 0
    for stop, exposure, reached in kept:  # each batch: its stages' candidates, then what was kept
        stages = found[start:stop]
        start = stop
        for left, values, hit in stages:
            assert bool((reached[left] | ~hit).all())  # a candidate that reached the goal: the kept one has too
            same = reached[left] == hit
            assert bool((exposure[left][same] <= values[same] + 1e-7).all())
    assert set(outcome.stages) == set(STAGES)
    images = [outcome.stages[name]["images"] for name in STAGES]
    assert images == sorted(images, reverse=True) and images[0] <= outcome.num_attacked
    assert outcome.gradient_passes == sum(outcome.stages[name]["gradient_passes"] for name in STAGES) > 0
    assert outcome.stages["square"]["gradient_passes"] == 0
    assert outcome.forward_passes >= sum(outcome.stages[name]["forward_passes"] for name in STAGES)


@pytest.mark.parametrize("side", ["query", "gallery"])
def test_auto_is_at_least_as_strong_as_apgd_on_either_objective(campaign, side):
    auto = run(campaign, AttackSetting("auto", 3.0, side, steps=6))[1][0]["mAP"]
    alone = [run(campaign, AttackSetting("apgd", 3.0, side, steps=6, attack_loss=loss))[1][0]["mAP"] for loss in ("paper", "margin")]
    clean = campaign.clean_result(campaign.targets[0], campaign.pipelines[0])["mAP"]
    assert auto <= min(alone) + 0.005 and auto < clean


def test_l2_auto_has_no_rank_only_search(campaign):
    outcome = attack(campaign, AttackSetting("auto", 128.0, "query", norm="l2", steps=3))
    assert outcome.stages["square"]["images"] == 0 and outcome.stages["apgd-paper"]["images"] > 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"goal": "targeted"}, "non-targeted"), ({"step_size": 1.0}, "parameter-free"), ({"restarts": 2}, "parameter-free"),
     ({"schedule": "fast"}, "fixes its objectives"), ({"attack_loss": "margin"}, "gradient step rules"), ({"steps": 0}, "--steps")],
)  # fmt: skip
def test_auto_refuses_the_options_it_fixes(changes, message):
    with pytest.raises(InputError, match=message):
        check_setting(replace(AttackSetting("auto", 8.0), **changes))


def test_the_robustness_score_by_hand():
    def row(eps, side, mAP, source="m", goal="untargeted", pipeline="plain", attack="auto", norm="linf"):
        return {"attack": attack, "norm": norm, "eps": eps, "side": side, "mAP": mAP, "source": source, "target": "m",
                "goal": goal, "pipeline": pipeline}

    record = {"clean": {"m": {"mAP": 0.8}}, "clean_by_pipeline": {"plain": {}, "flip": {}}, "results": [
        row(8, "gallery", 0.4), row(8, "gallery", 0.2),  # the worst of two attacks counts: 0.2 / 0.8
        row(4, "query", 0.6),  # 0.6 / 0.8
        row(8, "query", 0.0, source="other"), row(4, "gallery", 0.0, goal="targeted"), row(4, "both", 0.0, pipeline="flip"),
        row(4, "query", 0.0, attack="blackbox"),  # not white-box: left out
        row(8, "gallery", 0.4, norm="l2"),  # a cell of its own: 0.4 / 0.8
    ]}  # fmt: skip
    score = robustness_score(record, "m")
    cells = [["l2", 8, "gallery"], ["linf", 4, "query"], ["linf", 8, "gallery"]]
    assert score == {"score": pytest.approx((0.5 + 0.75 + 0.25) / 3), "clean_mAP": 0.8, "cells": cells}
    assert robustness_scores(record) == {"m": score}
    assert score_lines({"robustness": {"m": score}}) == "robustness score of m: 0.500 (worst mAP / clean mAP 80.0, averaged over 3 eps/side cells)\n"
    assert robustness_score({"clean": {"m": {"mAP": 0.8}}, "results": []}, "m") is None


def test_auto_with_a_ball_of_radius_0_gives_the_clean_metrics_exactly(campaign, monkeypatch):
    """Every stage, the selection, the 8-bit rounding and the evaluation of attacked rows, with nothing to move."""
    build = AutoEnsemble.__init__

    def zero_ball(self, *args, **kwargs):
        build(self, *args, **kwargs)
        for stage in self.stages.values():
            stage.step_rule.eps = 0.0
        self.search.eps = 0.0

    monkeypatch.setattr(AutoEnsemble, "__init__", zero_ball)
    outcome = attack(campaign, AttackSetting("auto", 1.0, "both", steps=3))
    named = campaign.sources[0]
    attacked, _ = evaluate_outcome(campaign, outcome, named)
    clean = campaign.clean_metrics(named).as_dict()
    assert outcome.stages["square"]["images"] > 0  # every stage ran
    assert all(attacked[key] == value for key, value in clean.items())
