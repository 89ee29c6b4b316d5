"""The deployed pipeline: flip averaging (differentiable), average query expansion, names and options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metricattack.attacks.attack import MetricAttack, eval_mode
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import build_step_rule
from metricattack.errors import InputError
from metricattack.evaluation import evaluate_ranking, pairwise_distance
from metricattack.evaluation.pipeline import (
    PLAIN,
    FlipAverage,
    Pipeline,
    average_query_expansion,
    check_pipelines,
    pipelines_from_options,
    with_flip,
)
from metricattack.evaluation.rerank import k_reciprocal_distances


class ColumnWeights(nn.Module):
    """features = per-image weighted sums over columns: not mirror-symmetric, so flipping matters."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(1.0, 5.0))  # over a width of 4
        self.spec = "the wrapped model's spec"

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B,C,H,4) -> (B,C*H)
        return (images * self.weight).sum(dim=-1).flatten(1)


def test_flip_average_is_the_mean_of_both_views_and_its_gradient_too():
    model = ColumnWeights()
    images = torch.rand(2, 1, 3, 4, requires_grad=True)
    flipped = FlipAverage(model)
    features = flipped(images)
    # the mirrored image weights columns 4, 3, 2, 1: on average 2.5 everywhere
    torch.testing.assert_close(features, images.detach().sum(dim=-1).flatten(1) * 2.5)
    features.sum().backward()
    torch.testing.assert_close(images.grad, torch.full_like(images, 2.5))
    assert flipped.spec == "the wrapped model's spec"


def test_with_flip_wraps_and_unwraps_once():
    model = ColumnWeights()
    assert with_flip(model, False) is model and with_flip(FlipAverage(model), False) is model
    twice = with_flip(with_flip(model, True), True)
    assert isinstance(twice, FlipAverage) and twice.model is model


def test_a_wrapper_keeps_the_mode_of_the_model_it_wraps():
    model = ColumnWeights().eval()
    flipped = FlipAverage(model)
    with eval_mode([flipped]):
        pass
    assert not flipped.training and not model.training
    assert FlipAverage(ColumnWeights().train()).training


def attack_once(model: nn.Module) -> None:
    """A bare two-step I-FGSM over ``model`` on random images, away from random references."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 6, 4, generator=generator)
    references = torch.randn(5, 4 * 6 * 4, generator=generator)
    own = torch.zeros(3, 5, dtype=torch.bool)
    own[:, 0] = True
    MetricAttack([model], [NonTargetedMetricLoss()], build_step_rule("ifgsm", 4 / 255, steps=2)).perturb(images, [references], own)


def normed_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten())


def test_a_bare_attack_over_flip_averaging_built_during_training_leaves_the_deployed_model_in_eval_mode():
    model = normed_net()
    flipped = with_flip(model, True)  # built while the model trains
    model.eval()  # then deployed
    running_mean = model[1].running_mean.clone()
    attack_once(flipped)
    assert not any(module.training for module in model.modules())
    torch.testing.assert_close(model[1].running_mean, running_mean)  # the attack ran in eval mode


def test_a_bare_attack_restores_each_modules_own_mode():
    model = normed_net().train()
    model[1].eval()  # frozen batch norm inside a model being trained
    flipped = with_flip(model, True)
    attack_once(flipped)
    assert [module.training for module in model.modules()] == [True, True, False, True]
    assert flipped.training


def loop_query_expansion(queries, gallery, top_n, metric, normalize):
    """q' = (q + its top_n nearest gallery features) / (top_n + 1), one query at a time."""
    if normalize:
        queries, gallery = (torch.nn.functional.normalize(x, dim=1) for x in (queries, gallery))
    rows = []
    for query in queries:
        distances = torch.tensor([pairwise_distance(query[None], g[None], metric)[0, 0] for g in gallery])
        nearest = distances.argsort()[:top_n]
        rows.append((query + gallery[nearest].sum(dim=0)) / (top_n + 1))
    return torch.stack(rows)


@pytest.mark.parametrize("metric,normalize", [("euclidean", True), ("euclidean", False), ("cosine", False)])
def test_average_query_expansion_matches_a_loop(metric, normalize):
    generator = torch.Generator().manual_seed(0)
    queries, gallery = torch.randn(5, 6, generator=generator, dtype=torch.float64), torch.randn(9, 6, generator=generator, dtype=torch.float64)
    expected = loop_query_expansion(queries, gallery, 3, metric, normalize)
    for chunk_size in (None, 2):
        got = average_query_expansion(queries, gallery, 3, metric, normalize, chunk_size=chunk_size)
        torch.testing.assert_close(got, expected)


def test_query_expansion_bounds():
    with pytest.raises(InputError, match="--query-expansion 4"):
        average_query_expansion(torch.randn(2, 3), torch.randn(3, 3), 4)


def test_pipeline_distances_compose_the_steps():
    generator = torch.Generator().manual_seed(1)
    queries, gallery = torch.randn(6, 5, generator=generator), torch.randn(30, 5, generator=generator)
    torch.testing.assert_close(PLAIN.distances(queries, gallery, "euclidean", True), pairwise_distance(queries, gallery, "euclidean", True))
    expanded = average_query_expansion(queries, gallery, 2, "euclidean", True)
    torch.testing.assert_close(Pipeline(query_expansion=2).distances(queries, gallery, "euclidean", True),
                               pairwise_distance(expanded, gallery, "euclidean", True))  # fmt: skip
    torch.testing.assert_close(Pipeline(query_expansion=2, rerank=True).distances(queries, gallery, "euclidean", True),
                               k_reciprocal_distances(expanded, gallery, "euclidean", True))  # fmt: skip


@pytest.mark.parametrize("pipeline", [PLAIN, Pipeline(query_expansion=2), Pipeline(rerank=True)])
def test_pipeline_evaluate_equals_the_ranking_of_its_distances(pipeline):
    generator = torch.Generator().manual_seed(2)
    queries, gallery = torch.randn(6, 5, generator=generator), torch.randn(30, 5, generator=generator)
    labels = (torch.arange(6) % 3, torch.arange(30) % 3, torch.zeros(6, dtype=torch.long), torch.ones(30, dtype=torch.long))
    direct = evaluate_ranking(pipeline.distances(queries, gallery, "euclidean", False), *labels)
    assert pipeline.evaluate(queries, gallery, labels, "euclidean", False).mAP == pytest.approx(direct.mAP)


def test_names_round_trip():
    assert PLAIN.name == "plain" and Pipeline.parse("plain") == PLAIN
    full = Pipeline(flip=True, query_expansion=5, rerank=True)
    assert full.name == "flip+qe5+rerank" and Pipeline.parse("rerank+qe5+flip") == full
    assert full.as_dict() == {"name": "flip+qe5+rerank", "flip": True, "query_expansion": 5, "rerank": True,
                              "k1": 20, "k2": 6, "lambda_value": 0.3}  # fmt: skip


@pytest.mark.parametrize("text", ["", "flip+flip", "qe0", "qe", "rerank+sharpen", "Plain"])
def test_bad_names_are_refused(text):
    with pytest.raises(InputError, match="--pipelines: cannot read"):
        Pipeline.parse(text)


def test_options_give_the_deployed_pipeline_first_without_repeats():
    pipelines = pipelines_from_options(True, 0, True, ["plain", "rerank+flip", "qe3"])
    assert [p.name for p in pipelines] == ["flip+rerank", "plain", "qe3"]
    assert pipelines_from_options(False, 0, False, None) == [PLAIN]
    with pytest.raises(InputError, match="--query-expansion"):
        pipelines_from_options(False, -1, False, None)
    with pytest.raises(InputError, match="--query-expansion"):
        pipelines_from_options(False, "5", False, None)  # a YAML string
    with pytest.raises(InputError, match="--pipelines: expected a list"):
        pipelines_from_options(False, 0, False, "plain rerank")
    with pytest.raises(InputError, match="no repeats"):
        check_pipelines([PLAIN, Pipeline()])
