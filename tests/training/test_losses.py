"""Label-smoothed cross entropy, batch-hard triplet and their sum, against hand formulas and loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metricattack.errors import InputError
from metricattack.training.losses import CrossEntropyLabelSmooth, ReIDLoss, TripletLoss

LABELS = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])  # identity 2 has no other positive


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_a_hand_formula_and_torch(epsilon):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    ours = CrossEntropyLabelSmooth(5, epsilon)(logits, labels)
    by_hand = 0.0
    for i in range(6):
        log_norm = math.log(sum(math.exp(float(v)) for v in logits[i]))
        for c in range(5):
            target = (1 - epsilon) * (c == int(labels[i])) + epsilon / 5
            by_hand -= target * (float(logits[i, c]) - log_norm) / 6
    assert float(ours) == pytest.approx(by_hand, rel=1e-12)
    assert torch.isclose(ours, F.cross_entropy(logits, labels, label_smoothing=epsilon))


def brute_force_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float, metric: str) -> float:
    """Batch-hard triplet loss with a double loop over anchors and candidates."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        if metric == "cosine":
            return 1 - float(a @ b / (a.norm() * b.norm()))
        squared = float(((a - b) ** 2).sum())
        return squared if metric == "sqeuclidean" else math.sqrt(squared)

    total = 0.0
    for anchor in range(len(labels)):
        positive = max(distance(features[anchor], features[j]) for j in range(len(labels)) if labels[j] == labels[anchor])
        negative = min(distance(features[anchor], features[j]) for j in range(len(labels)) if labels[j] != labels[anchor])
        gap = positive - negative
        total += max(0.0, gap + margin) if margin > 0 else math.log1p(math.exp(gap))
    return total / len(labels)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-6), (torch.float32, 1e-4)])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, 1.0, 0.0, -1.0])
def test_batch_hard_triplet_matches_a_double_loop(margin, metric, dtype, tolerance):
    features = torch.randn(8, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = TripletLoss(margin, metric)(features.to(dtype), LABELS)
    assert ours.dtype == dtype
    # The lone identity's hardest positive is itself: 0 in the loop, 1e-6 with pairwise_distance's sqrt floor.
    assert float(ours) == pytest.approx(brute_force_triplet(features, LABELS, margin, metric), abs=tolerance)


def test_triplet_loss_is_zero_when_identities_are_far_apart_and_gradients_are_finite():
    features = torch.cat([torch.zeros(2, 3), torch.full((2, 3), 10.0)]).requires_grad_()
    loss = TripletLoss(0.3)(features, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(features.grad).all()
    alone = torch.randn(3, 4, requires_grad=True)  # no negative in the batch: contributes 0, no NaN
    loss = TripletLoss(0.3)(alone, torch.tensor([5, 5, 5]))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(alone.grad).all()


def test_sgd_on_a_linear_embedding_lowers_the_triplet_loss():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(4)  # P=4 identities x K=4
    inputs = torch.randn(4, 6, generator=generator)[labels] + 0.8 * torch.randn(16, 6, generator=generator)
    embedding = torch.nn.Linear(6, 3)
    with torch.no_grad():
        embedding.weight.copy_(torch.randn(3, 6, generator=generator))
        embedding.bias.zero_()
    criterion = TripletLoss(0.3)
    optimizer = torch.optim.SGD(embedding.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        loss = criterion(embedding(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kinds", ["softmax", "triplet", "softmax+triplet"])
def test_reid_loss_sums_the_parts_it_names(kinds):
    generator = torch.Generator().manual_seed(2)
    logits, features = torch.randn(8, 4, generator=generator), torch.randn(8, 5, generator=generator)
    total, parts = ReIDLoss(kinds, 4, label_smoothing=0.2, margin=0.5)(logits, features, LABELS)
    expected = {
        "softmax": float(CrossEntropyLabelSmooth(4, 0.2)(logits, LABELS)),
        "triplet": float(TripletLoss(0.5)(features, LABELS)),
    }
    assert list(parts) == kinds.split("+")
    assert parts == pytest.approx({name: expected[name] for name in parts})
    assert float(total) == pytest.approx(sum(parts.values()))


def test_triplet_only_needs_no_logits():
    total, parts = ReIDLoss("triplet", 4)(None, torch.randn(8, 5), LABELS)
    assert float(total) == pytest.approx(parts["triplet"])


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match=r"--loss: unknown loss 'arcface' \(expected one of softmax, triplet, softmax\+triplet\)"):
        ReIDLoss("arcface", 3)
    with pytest.raises(InputError, match=r"--label-smoothing must be in \[0, 1\), got 1.5"):
        ReIDLoss("softmax", 3, label_smoothing=1.5)
    with pytest.raises(InputError, match="unknown distance 'manhattan'"):
        TripletLoss(metric="manhattan")
