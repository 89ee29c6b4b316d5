"""Distances against brute-force loops."""

import math

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import DISTANCE_METRICS, pairwise_distance


def brute_force(query, gallery, metric, normalize):
    rows = []
    for q in query.tolist():
        row = []
        for g in gallery.tolist():
            if normalize or metric == "cosine":
                nq, ng = math.sqrt(sum(x * x for x in q)), math.sqrt(sum(x * x for x in g))
                q_, g_ = [x / nq for x in q], [x / ng for x in g]
            else:
                q_, g_ = q, g
            if metric == "cosine":
                row.append(1 - sum(a * b for a, b in zip(q_, g_)))
            else:
                squared = sum((a - b) ** 2 for a, b in zip(q_, g_))
                row.append(squared if metric == "sqeuclidean" else math.sqrt(squared))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_brute_force(metric, normalize, dtype):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    gallery = torch.randn(6, 7, generator=generator, dtype=torch.float64)
    got = pairwise_distance(query.to(dtype), gallery.to(dtype), metric, normalize)
    assert got.dtype == dtype and got.shape == (5, 6)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(got.double(), brute_force(query, gallery, metric, normalize), atol=tolerance)


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
def test_gradient_is_finite_where_features_coincide(metric):
    features = torch.randn(3, 4, requires_grad=True)
    distances = pairwise_distance(features, features.detach(), metric)
    (grad,) = torch.autograd.grad(distances.sum(), features)
    assert torch.isfinite(grad).all()
    assert distances.diagonal().abs().max() < 1e-3


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown distance 'manhattan'.*euclidean"):
        pairwise_distance(torch.zeros(1, 2), torch.zeros(1, 2), "manhattan")
