"""Retrieval evaluation: distances, CMC, mAP and mINP under the Market-1501 protocol."""

from metricattack.evaluation.distance import DISTANCE_METRICS, pairwise_distance
from metricattack.evaluation.ranking import (
    AP_MODES,
    RetrievalMetrics,
    evaluate_features,
    evaluate_ranking,
    top_k_valid,
    valid_mask,
)

__all__ = [
    "AP_MODES",
    "DISTANCE_METRICS",
    "RetrievalMetrics",
    "evaluate_features",
    "evaluate_ranking",
    "pairwise_distance",
    "top_k_valid",
    "valid_mask",
]
