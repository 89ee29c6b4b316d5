"""Distances against brute-force double loops, in float32 and float64, and their gradients."""

import math

import pytest
import torch

from metricattack.errors import InputError
from metricattack.evaluation import DISTANCE_METRICS, pairwise_distance
from metricattack.evaluation.distance import BlockedDistances


def brute_force(query: list[list[float]], gallery: list[list[float]], metric: str, normalize: bool) -> torch.Tensor:
    """One pair at a time in Python floats (double precision)."""

    def unit(x):
        norm = max(math.sqrt(sum(v * v for v in x)), 1e-12)  # a zero feature stays zero, as in F.normalize
        return [v / norm for v in x]

    rows = []
    for q in query:
        row = []
        for g in gallery:
            if normalize or metric == "cosine":
                q, g = unit(q), unit(g)
            if metric == "cosine":
                row.append(1 - sum(a * b for a, b in zip(q, g)))
            else:
                squared = sum((a - b) ** 2 for a, b in zip(q, g))
                row.append(squared if metric == "sqeuclidean" else math.sqrt(squared))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def tolerance(query: torch.Tensor, gallery: torch.Tensor, metric: str, normalize: bool, dtype: torch.dtype):
    """(Q,G) error bound of the ||q||^2 + ||g||^2 - 2 q.g form: cancellation costs eps * (||q||^2 + ||g||^2),
    which the square root of euclidean turns into sqrt(eps * ...) for coinciding features."""
    if normalize or metric == "cosine":
        scale = torch.full((len(query), len(gallery)), 2.0, dtype=torch.float64)
    else:
        scale = query.pow(2).sum(1)[:, None] + gallery.pow(2).sum(1)[None, :]
    bound = 16 * torch.finfo(dtype).eps * scale
    return bound.sqrt() + 1e-6 if metric == "euclidean" else bound  # + the floor sqrt(1e-12)


def features(seed: int, rows: int, dim: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dim, generator=generator, dtype=torch.float64) * 3


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_brute_force(metric, normalize, dtype):
    query, gallery = features(0, 5), features(1, 6)
    query[2] = 0  # a zero feature: normalising leaves it at zero
    query[4] *= 1e-3  # a short one: normalising makes it unit length
    gallery[3] = query[1]  # a coinciding pair
    got = pairwise_distance(query.to(dtype), gallery.to(dtype), metric, normalize)
    assert got.dtype == dtype and got.shape == (5, 6)
    expected = brute_force(query.tolist(), gallery.tolist(), metric, normalize)
    error = (got.double() - expected).abs()
    assert (error <= tolerance(query, gallery, metric, normalize, dtype)).all(), error.max()


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_is_finite_where_features_coincide(metric, normalize, dtype):
    # Rows 0-1 are random, row 2 has small integers and row 3 is zero: for these two the computed
    # squared distance to themselves is exactly 0, where the square root has an infinite slope.
    query = torch.cat([features(2, 2, dim=4), torch.tensor([[1.0, -2, 0, 3], [0, 0, 0, 0]], dtype=torch.float64)])
    query = query.to(dtype).requires_grad_(True)  # (4,4)
    gallery = query.detach().clone().requires_grad_(True)
    distances = pairwise_distance(query, gallery, metric, normalize)
    query_grad, gallery_grad = torch.autograd.grad(distances.sum(), (query, gallery))
    assert torch.isfinite(query_grad).all() and torch.isfinite(gallery_grad).all()
    plain = query.detach().double()
    expected = brute_force(plain.tolist(), plain.tolist(), metric, normalize).diagonal()  # cosine of 0 and 0 is 1
    error = (distances.detach().diagonal().double() - expected).abs()
    assert (error <= tolerance(plain, plain, metric, normalize, dtype).diagonal()).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_euclidean_floors_at_1e_6_with_zero_gradient(dtype):
    # Squared distances below 1e-12 (here exactly 1e-14 and 0) are floored: the distance reads
    # sqrt(1e-12) = 1e-6 and the gradient is 0 instead of 1 / (2 sqrt(tiny)).
    query = torch.tensor([[1e-7, 0.0], [0.0, 0.0]], dtype=dtype, requires_grad=True)
    distances = pairwise_distance(query, torch.zeros(1, 2, dtype=dtype))  # (2,1)
    torch.testing.assert_close(distances, torch.full((2, 1), 1e-6, dtype=dtype))
    (grad,) = torch.autograd.grad(distances.sum(), query)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
def test_gradient_matches_finite_differences(metric, normalize):
    query = features(3, 3, dim=4).requires_grad_(True)
    gallery = features(4, 5, dim=4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, g: pairwise_distance(q, g, metric, normalize), (query, gallery))


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown distance 'manhattan'.*euclidean.*sqeuclidean.*cosine"):
        pairwise_distance(torch.zeros(1, 2), torch.zeros(1, 2), "manhattan")


def test_mismatched_feature_shapes_are_errors():
    with pytest.raises(InputError, match=r"same D, got \(2, 3\) and \(4, 5\)"):
        pairwise_distance(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(InputError, match="same D"):
        pairwise_distance(torch.zeros(3), torch.zeros(4, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("metric", DISTANCE_METRICS)
def test_cuda_matches_cpu(metric):
    query, gallery = features(5, 4).float(), features(6, 9).float()
    got = pairwise_distance(query.cuda(), gallery.cuda(), metric)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), pairwise_distance(query, gallery, metric), atol=1e-4, rtol=0)


@pytest.mark.parametrize("metric", DISTANCE_METRICS)
@pytest.mark.parametrize("normalize", [False, True])
def test_blocked_rows_do_not_depend_on_the_rows_asked_for(metric, normalize):
    query, gallery = features(7, 10).float(), features(8, 13).float()
    query[4] = 0  # a zero feature, normalised or not
    blocked = BlockedDistances(query, gallery, metric, normalize, block=4)
    whole = blocked.rows(0, 10).clone()
    torch.testing.assert_close(whole, pairwise_distance(query, gallery, metric, normalize), atol=1e-5, rtol=1e-5)
    for start, stop in [(0, 1), (3, 9), (9, 10), (2, 6), (5, 8), (0, 10)]:
        assert torch.equal(blocked.rows(start, stop), whole[start:stop])  # bit for bit, blocks of 4 rows
    expected = brute_force(query.double().tolist(), gallery.double().tolist(), metric, normalize)
    error = (whole.double() - expected).abs()
    assert (error <= tolerance(query.double(), gallery.double(), metric, normalize, torch.float32)).all()
