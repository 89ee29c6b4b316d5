"""k-reciprocal re-ranking against a plain loop over dense matrices (the authors' algorithm, written out)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance
from metricattack.evaluation.rerank import k_reciprocal_distances


def reciprocal_set(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """R(i,k): the j among i's k+1 nearest that have i among their own k+1 nearest."""
    return np.array([j for j in rank[i, : k + 1] if i in rank[j, : k + 1]], dtype=int)


def reference_rerank(dist: np.ndarray, num_query: int, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    """Dense re-ranking of the full (N,N) distance matrix of queries then gallery; returns (Q,G)."""
    squared = dist.astype(np.float64) ** 2
    original = squared / squared.max(axis=1, keepdims=True)
    num_all = len(dist)
    rank = np.argsort(original, axis=1, kind="stable")
    weights = np.zeros((num_all, num_all))
    for i in range(num_all):
        own = reciprocal_set(rank, i, k1)
        expanded = set(own.tolist())
        for j in own:
            half = reciprocal_set(rank, j, int(np.around(k1 / 2)))
            if len(set(half.tolist()) & set(own.tolist())) > 2 / 3 * len(half):
                expanded |= set(half.tolist())
        members = sorted(expanded)
        w = np.exp(-original[i, members])
        weights[i, members] = w / w.sum()
    if k2 != 1:
        weights = np.stack([weights[rank[i, :k2]].mean(axis=0) for i in range(num_all)])
    final = np.zeros((num_query, num_all - num_query))
    for q in range(num_query):
        for g in range(num_query, num_all):
            shared = np.minimum(weights[q], weights[g]).sum()
            jaccard = 1 - shared / np.maximum(weights[q], weights[g]).sum()
            final[q, g - num_query] = (1 - lambda_value) * jaccard + lambda_value * original[q, g]
    return final


def clustered_features(num: int, dim: int, groups: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Features around a few centres, so neighbourhoods overlap as with real identities."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, dim, generator=generator, dtype=dtype)
    labels = torch.randint(groups, (num,), generator=generator)
    return centres[labels] + 0.6 * torch.randn(num, dim, generator=generator, dtype=dtype)


@pytest.mark.parametrize(
    "num_query,num_gallery,k1,k2,metric,normalize",
    [
        (12, 48, 20, 6, "euclidean", True),  # the paper's settings
        (9, 31, 6, 3, "euclidean", False),
        (7, 25, 5, 1, "cosine", False),  # k2 = 1: no local query expansion; k1 odd: round(2.5) = 2
        (5, 20, 4, 2, "sqeuclidean", False),
    ],
)
def test_rerank_matches_the_dense_reference(num_query, num_gallery, k1, k2, metric, normalize):
    features = clustered_features(num_query + num_gallery, 8, 5, seed=num_query)
    query, gallery = features[:num_query], features[num_query:]
    dense = pairwise_distance(features, features, metric, normalize).numpy()
    expected = reference_rerank(dense, num_query, k1, k2, 0.3)
    for chunk_size in (None, 1, 7):
        got = k_reciprocal_distances(query, gallery, metric, normalize, k1, k2, 0.3, chunk_size=chunk_size)
        assert got.shape == (num_query, num_gallery) and got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_rerank_in_float32_agrees_with_float64():
    features = clustered_features(50, 16, 6, seed=1)
    double = k_reciprocal_distances(features[:10], features[10:], "euclidean", True)
    single = k_reciprocal_distances(features[:10].float(), features[10:].float(), "euclidean", True)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=1e-4, atol=1e-5)


def test_lambda_one_is_the_scaled_squared_distance():
    features = clustered_features(30, 4, 3, seed=2)
    got = k_reciprocal_distances(features[:6], features[6:], lambda_value=1.0)
    squared = pairwise_distance(features[:6], features).square()
    torch.testing.assert_close(got, squared[:, 6:] / squared.max(dim=1, keepdim=True).values)


def test_rerank_rejects_bad_parameters():
    features = torch.randn(10, 4)
    with pytest.raises(InputError, match="k1 >= 1"):
        k_reciprocal_distances(features[:2], features[2:], k1=0)
    with pytest.raises(InputError, match="lambda"):
        k_reciprocal_distances(features[:2], features[2:], lambda_value=1.5)
    with pytest.raises(InputError, match="same D"):
        k_reciprocal_distances(features[:2], torch.randn(8, 5))
