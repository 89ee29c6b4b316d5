"""Metric losses against brute-force loops and against a loop written like the paper's code."""

from __future__ import annotations

import pytest
import torch

from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import IFGSM, MIFGSM
from metricattack.errors import InputError

METRICS = ["euclidean", "sqeuclidean", "cosine"]


def slow_distance(a: torch.Tensor, b: torch.Tensor, metric: str, normalize: bool) -> float:
    """One distance between two feature vectors, the obvious way."""
    a, b = a.double(), b.double()
    if normalize:
        a, b = a / a.norm(), b / b.norm()
    if metric == "cosine":
        return 1 - float(a @ b / (a.norm() * b.norm()))
    squared = float(((a - b) ** 2).sum())
    return squared if metric == "sqeuclidean" else squared**0.5


def slow_mean(adv: torch.Tensor, refs: torch.Tensor, mask_row: torch.Tensor, metric: str, normalize: bool) -> float:
    values = [slow_distance(adv, refs[j], metric, normalize) for j in range(len(refs)) if mask_row[j]]
    return sum(values) / len(values)


def features(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 adversarial and 7 reference features (D=6) with own / target masks from pids."""
    generator = torch.Generator().manual_seed(seed)
    adv = torch.randn(4, 6, generator=generator, dtype=dtype)
    refs = torch.randn(7, 6, generator=generator, dtype=dtype)
    ref_pids = torch.tensor([1, 1, 2, 3, 3, 3, 4])
    own = torch.tensor([1, 2, 3, 1])[:, None] == ref_pids
    target = torch.tensor([4, 3, 2, 2])[:, None] == ref_pids
    return adv, refs, own, target


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("metric", METRICS)
def test_losses_match_loops(metric, normalize, dtype, tolerance):
    adv, refs, own, target = features(dtype)
    push = NonTargetedMetricLoss(metric, normalize)(adv, refs, own)
    both = TargetedMetricLoss(metric, normalize, push_weight=0.5)(adv, refs, own, target)
    assert push.shape == both.shape == (4,) and push.dtype == dtype
    for i in range(4):
        mine, theirs = slow_mean(adv[i], refs, own[i], metric, normalize), slow_mean(adv[i], refs, target[i], metric, normalize)
        assert float(push[i]) == pytest.approx(mine, rel=tolerance, abs=tolerance)
        assert float(both[i]) == pytest.approx(0.5 * mine - theirs, rel=tolerance, abs=tolerance)


@pytest.mark.parametrize("metric", METRICS)
def test_a_row_does_not_depend_on_the_rest_of_the_batch(metric):
    adv, refs, own, target = features(torch.float64, seed=1)
    loss = TargetedMetricLoss(metric, normalize=True)
    alone = adv[2:3].clone().requires_grad_(True)
    batch = torch.cat([adv[:2], alone, adv[3:]])
    value_alone = loss(alone, refs, own[2:3], target[2:3])
    value_in_batch = loss(batch, refs, own, target)[2:3]
    (grad_alone,) = torch.autograd.grad(value_alone.sum(), alone)
    (grad_in_batch,) = torch.autograd.grad(value_in_batch.sum(), alone)  # only row 2's own value
    assert torch.allclose(value_alone, value_in_batch, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grad_alone, grad_in_batch, rtol=1e-12, atol=1e-12)


def test_targeted_without_own_references_only_pulls():
    adv, refs = torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])
    value = TargetedMetricLoss(push_weight=2.0)(adv, refs, torch.tensor([[False]]), torch.tensor([[True]]))
    assert float(value) == pytest.approx(-5.0)


def test_push_weight_scales_only_the_push():
    adv, refs = torch.zeros(1, 2), torch.tensor([[3.0, 4.0], [6.0, 8.0]])
    own, target = torch.tensor([[False, True]]), torch.tensor([[True, False]])
    assert float(TargetedMetricLoss(push_weight=0.5)(adv, refs, own, target)) == pytest.approx(0.5 * 10 - 5)


def test_missing_references_are_programming_errors():
    zeros = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="at least one reference of its own identity"):
        NonTargetedMetricLoss()(zeros, zeros, torch.tensor([[False]]))
    with pytest.raises(ValueError, match="at least one reference of its target identity"):
        TargetedMetricLoss()(zeros, zeros, torch.tensor([[True]]), torch.tensor([[False]]))
    with pytest.raises(ValueError, match=r"own_mask must be a bool tensor of shape \(1, 1\)"):
        NonTargetedMetricLoss()(zeros, zeros, torch.ones(1, 2, dtype=torch.bool))


def test_bad_settings_and_repr():
    with pytest.raises(InputError, match="unknown distance 'manhattan'"):
        NonTargetedMetricLoss("manhattan")
    with pytest.raises(InputError, match="push_weight must be >= 0"):
        TargetedMetricLoss(push_weight=-1.0)
    assert repr(TargetedMetricLoss("cosine", True, 0.5)) == "TargetedMetricLoss(metric='cosine', normalize=True, push_weight=0.5, pull='mean', push='mean')"
    assert repr(NonTargetedMetricLoss()) == "NonTargetedMetricLoss(metric='sqeuclidean', normalize=False)"
    with pytest.raises(InputError, match="unknown pull 'max'"):
        TargetedMetricLoss(pull="max")


@pytest.mark.parametrize("metric", METRICS)
def test_nearest_pull_is_minus_the_distance_to_the_nearest_target(metric):
    adv, refs, own, target = features(torch.float64, seed=3)
    values = TargetedMetricLoss(metric, normalize=True, push_weight=0.0, pull="nearest")(adv, refs, own, target)
    for i in range(4):
        nearest = min(slow_distance(adv[i], refs[j], metric, True) for j in range(len(refs)) if target[i, j])
        assert float(values[i]) == pytest.approx(-nearest, rel=1e-10)


# --- the paper's gallery attack (Gen_Adv.py), rebuilt per identity -------------------------------


def tiny_reid_data(seed: int = 0):
    """A linear 'model' on 2x3x4 images, 5 queries and 8 gallery images of 3 identities, float64."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(6, 24, generator=generator, dtype=torch.float64)
    query = torch.rand(5, 2, 3, 4, generator=generator, dtype=torch.float64)
    gallery = torch.rand(8, 2, 3, 4, generator=generator, dtype=torch.float64)
    query_pids = torch.tensor([1, 1, 2, 3, 3])
    gallery_pids = torch.tensor([2, 1, 3, 1, 2, 3, 3, 1])
    return (lambda x: x.flatten(1) @ weight.T), query, gallery, query_pids, gallery_pids


def paper_features(model, images):
    """extract_feature_img: features divided by their L2 norm."""
    features = model(images)
    return features / features.norm(dim=1, keepdim=True)


def paper_criterion(query_features, gallery_features):
    """criterion: sum over all (query, gallery) pairs of MSELoss, i.e. ||q - g||^2 / D."""
    mse = torch.nn.MSELoss()
    return sum(mse(q, g) for q in query_features for g in gallery_features)


@pytest.mark.parametrize("metric,normalize", [("euclidean", False), ("sqeuclidean", True), ("cosine", False)])
def test_per_identity_loop_equals_the_batched_loss(metric, normalize):
    model, query, gallery, query_pids, gallery_pids = tiny_reid_data()
    query_features, gallery_features = model(query), model(gallery)
    own_mask = gallery_pids[:, None] == query_pids[None, :]
    batched = NonTargetedMetricLoss(metric, normalize)(gallery_features, query_features, own_mask)
    for pid in query_pids.unique().tolist():  # for each query identity: its gallery images vs its queries
        identity_queries = query_features[query_pids == pid]
        for index in (gallery_pids == pid).nonzero().flatten().tolist():
            distances = [slow_distance(gallery_features[index], q, metric, normalize) for q in identity_queries]
            assert float(batched[index]) == pytest.approx(sum(distances) / len(distances), rel=1e-10)


def test_paper_criterion_is_our_loss_up_to_a_positive_factor_per_image():
    model, query, gallery, query_pids, gallery_pids = tiny_reid_data()
    own_mask = gallery_pids[:, None] == query_pids[None, :]
    ours = NonTargetedMetricLoss("sqeuclidean", normalize=True)(model(gallery), model(query), own_mask)
    dimension = 6
    for index, pid in enumerate(gallery_pids.tolist()):
        identity_queries = paper_features(model, query[query_pids == pid])
        theirs = paper_criterion(identity_queries, paper_features(model, gallery[index : index + 1]))
        assert float(theirs) == pytest.approx(float(ours[index]) * len(identity_queries) / dimension, rel=1e-10)


def paper_mi_fgsm(model, query, gallery, epsilon: int, momentum: float) -> torch.Tensor:
    """MI_FGSM of Gen_Adv.py (I-FGSM is momentum 0), one identity's gallery images at a time."""
    max_iter = int(min(epsilon + 4, 1.25 * epsilon))
    query_features = paper_features(model, query).detach()
    lower = (gallery - epsilon / 255.0).clamp(min=0.0)
    upper = (gallery + epsilon / 255.0).clamp(max=1.0)
    x_adv, grad = gallery.clone().requires_grad_(True), None
    for _ in range(max_iter):
        loss = paper_criterion(query_features, paper_features(model, x_adv))
        (x_grad,) = torch.autograd.grad(loss, x_adv)
        norm = x_grad.abs().flatten(1).mean(dim=1).view(-1, 1, 1, 1).clamp(min=1e-12)
        x_grad = x_grad / norm
        grad = x_grad if grad is None else momentum * grad + x_grad
        x_adv = torch.min(torch.max(x_adv.detach() + 1 / 255.0 * grad.sign(), lower), upper).requires_grad_(True)
    return x_adv.detach()


@pytest.mark.parametrize("rule,momentum", [(IFGSM, 0.0), (MIFGSM, 1.0)])
def test_the_paper_gallery_attack_is_our_batched_attack(rule, momentum):
    model, query, gallery, query_pids, gallery_pids = tiny_reid_data(seed=2)
    epsilon = 5
    expected = torch.empty_like(gallery)
    for pid in query_pids.unique().tolist():
        rows = gallery_pids == pid
        expected[rows] = paper_mi_fgsm(model, query[query_pids == pid], gallery[rows], epsilon, momentum)
    loss = NonTargetedMetricLoss("sqeuclidean", normalize=True)
    query_features = model(query).detach()
    own_mask = gallery_pids[:, None] == query_pids[None, :]
    ours = rule(epsilon / 255).run(gallery, lambda x: loss(model(x), query_features, own_mask))
    assert torch.allclose(ours, expected, rtol=0, atol=1e-12)
    assert not torch.equal(ours, gallery)


def test_the_nearest_push_and_pull_are_the_margin_of_a_nearest_neighbour_matcher():
    adversarial = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    references = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 5.0]])
    own = torch.tensor([[True, True, False, False], [False, False, False, False]])
    target = torch.tensor([[False, False, True, True], [True, False, False, False]])
    loss = TargetedMetricLoss("euclidean", push_weight=2.0, pull="nearest", push="nearest")(adversarial, references, own, target)
    # row 0: 2 * min(1, 3) - min(2, 5) = 0; row 1: no own reference, only the pull: -|(1,1) - (1,0)| = -1
    assert torch.allclose(loss, torch.tensor([0.0, -1.0]))
    (grad,) = torch.autograd.grad(loss.sum(), adversarial)
    assert torch.isfinite(grad).all()
