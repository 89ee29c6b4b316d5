"""Scoring an attack: metrics, ranking damage and perturbation sizes of the attacked retrieval, as result rows."""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from metricattack.evaluation.damage import ranking_damage
from metricattack.evaluation.perceptibility import perturbation_sizes
from metricattack.evaluation.pipeline import Pipeline, with_flip
from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.targets import target_success
from metricattack.models.features import check_finite

if TYPE_CHECKING:
    from metricattack.experiment.campaign import Campaign
    from metricattack.experiment.setting import NamedModel


def evaluate_outcome(campaign: Campaign, outcome: AttackOutcome, named: NamedModel, pipeline: Pipeline | None = None) -> tuple[dict, torch.Tensor]:
    """Metrics, ranking damage and perturbation sizes of the attacked retrieval for one target model under a
    pipeline (default: the deployed one), and its distance matrix (Q,G).

    Under the deployed pipeline the attacked features and ranking summary are kept in ``outcome.features``
    and ``outcome.rankings`` for ranking lists.
    """
    deployed = pipeline is None or pipeline == campaign.pipelines[0]
    pipeline = pipeline or campaign.pipelines[0]
    model = with_flip(named.model, pipeline.flip)
    query_features, gallery_features = (f.clone() for f in campaign.clean_features(named, pipeline.flip))
    for features, attacked, what in ((query_features, outcome.query, "attacked queries"),
                                     (gallery_features, outcome.gallery, "attacked gallery images")):  # fmt: skip
        for indices, images in attacked.chunks():
            features[indices.to(campaign.device)] = check_finite(campaign.features(model, images), named.name, what)
    metrics, distances = campaign.evaluate(named, query_features, gallery_features, pipeline)
    summary = campaign.summarize(distances)
    if deployed:
        outcome.features[named.name] = (query_features, gallery_features)
        outcome.rankings[named.name] = summary
    result = {"pipeline": pipeline.name, **metrics.as_dict(), **ranking_damage(campaign.clean_evaluation(named, pipeline)[1], summary)}
    if outcome.setting.goal == "targeted":
        clean_distances = campaign.evaluate(named, *campaign.clean_features(named, pipeline.flip), pipeline)[1]
        result.update(target_success(campaign, outcome, distances, clean_distances))
    if outcome.perceptibility is None:
        pairs = ((side.read(indices), images) for side, attacked in ((campaign.query, outcome.query), (campaign.gallery, outcome.gallery))
                 for indices, images in attacked.chunks())  # fmt: skip
        outcome.perceptibility = perturbation_sizes(pairs, campaign.batch_size, campaign.device)
    return {**result, **outcome.perceptibility}, distances


def result_rows(campaign: Campaign, outcome: AttackOutcome, sources: list[NamedModel]) -> list[dict]:
    """One result row per target model and pipeline of the campaign: the setting, metrics, damage and cost."""
    setting = outcome.setting
    rows = []
    for named, pipeline in itertools.product(campaign.targets, campaign.pipelines):
        metrics, _ = evaluate_outcome(campaign, outcome, named, pipeline)
        rows.append(
            {
                **asdict(setting),
                "steps": outcome.num_steps,
                "source": "+".join(s.name for s in sources),
                "target": named.name,
                **metrics,
                "num_attacked": outcome.num_attacked,
                "gradient_passes": outcome.gradient_passes,
                **({"stages": outcome.stages} if outcome.stages else {}),
                "seconds": round(outcome.seconds, 3),
            }
        )
    return rows
