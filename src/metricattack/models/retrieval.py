"""Clean retrieval of a model on a data set: features of both sides, distances, metrics."""

from __future__ import annotations

import torch

from metricattack.data.base import ReIDData
from metricattack.evaluation import RetrievalMetrics
from metricattack.evaluation.pipeline import Pipeline
from metricattack.models.features import extract_features
from metricattack.models.reid import ReIDModel


def evaluate_model(
    model: ReIDModel,
    data: ReIDData,
    device: torch.device,
    batch_size: int = 128,
    flip: bool = False,
    image_size: tuple[int, int] | None = None,
    workers: int = 0,
    average_precision: str = "standard",
    progress: bool = True,
    query_expansion: int = 0,
    rerank: bool = False,
    name: str | None = None,
) -> RetrievalMetrics:
    """Market-1501 metrics of ``model`` (called ``name`` in errors) on ``data``'s query and gallery, with the model's own distance, after
    flip averaging, average query expansion over the top ``query_expansion`` and re-ranking when asked."""
    pipeline = Pipeline(flip, query_expansion, rerank)
    options = dict(device=device, batch_size=batch_size, flip=flip, image_size=image_size, workers=workers, progress=progress,
                   name=name)  # fmt: skip
    query = extract_features(model, data.query, desc="query", **options)
    gallery = extract_features(model, data.gallery, desc="gallery", **options)
    spec = model.spec
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    return pipeline.evaluate(query.features, gallery.features, labels, spec.metric, spec.normalize, average_precision)


def metrics_line(metrics: RetrievalMetrics) -> str:
    """One line of percentages for the terminal."""
    return (
        f"mAP {100 * metrics.mAP:.1f}  rank-1 {100 * metrics.rank(1):.1f}  rank-5 {100 * metrics.rank(5):.1f}  "
        f"rank-10 {100 * metrics.rank(10):.1f}  mINP {100 * metrics.mINP:.1f}  "
        f"({metrics.num_queries} queries, {metrics.num_skipped} skipped)"
    )
