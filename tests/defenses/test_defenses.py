"""Defenses: the inner attack really perturbs, leaves BN statistics and parameter gradients alone, eps 0 is the
clean objective, and the losses match hand computations on tiny embeddings."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metricattack.data.base import read_image
from metricattack.defenses import DEFENSES, build_defense, with_purifier
from metricattack.defenses.base import Defense, embedding_distance, random_triplets, triplet_margin
from metricattack.defenses.hm import batch_hard_hardness
from metricattack.errors import InputError
from metricattack.models import build_model
from metricattack.training.loop import standard_loss
from metricattack.training.losses import ReIDLoss
from metricattack.training.samplers import relabel

BATCH_DEFENSES = [name for name in DEFENSES if name != "offline"]  # offline's batches are the usual loss


@pytest.fixture(scope="module")
def batch(tiny_data):
    """16 training images at 32x16 in [0,1] (4 identities x 4) and their relabelled identities."""
    labels_of = relabel([s.pid for s in tiny_data.train])[1]
    by_pid: dict[int, list] = {}
    for sample in tiny_data.train:
        by_pid.setdefault(sample.pid, []).append(sample)
    samples = [s for pid in sorted(by_pid)[:4] for s in by_pid[pid][:4]]
    images = torch.stack([read_image(s.path) for s in samples])
    images = F.interpolate(images, size=(32, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, torch.tensor([labels_of[s.pid] for s in samples])


@pytest.fixture()
def model(tiny_data):
    """A fresh compact model for 32x16 inputs, in train mode as the loop leaves it."""
    torch.manual_seed(0)
    return build_model("compact", num_classes=tiny_data.num_train_pids, input_size=(32, 16)).train()


def ready(defense: Defense, model: nn.Module) -> nn.Module:
    return defense.prepare_model(model, from_weights=True)


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("name", BATCH_DEFENSES)
def test_inner_attack_perturbs_and_touches_no_statistics_or_gradients(name, model, batch, monkeypatch):
    images, labels = batch
    defense = build_defense(name)
    model = ready(defense, model).train()
    seen = []
    original = Defense.perturb

    def spy(self, net, inputs, objective, generator):
        before = bn_buffers(net)
        adversarial = original(self, net, inputs, objective, generator)
        seen.append((inputs, adversarial, before, bn_buffers(net), net.training))
        assert all(p.grad is None for p in net.parameters())
        return adversarial

    monkeypatch.setattr(Defense, "perturb", spy)
    criterion = ReIDLoss("softmax+triplet", model.classifier.out_features)
    loss, parts = defense(model, images, labels, criterion, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and parts
    (inputs, adversarial, before, after, training), = seen
    eps = defense.eps / 255
    change = (adversarial - inputs).abs()
    assert change.max() > eps / 2  # really different from the clean inputs
    assert change.max() <= eps + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
    assert training == (name != "purifier")  # the loop's train mode is back after the inner attack
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize("name", ["est", "pgd-at", "ses"])
def test_eps_zero_is_the_clean_objective(name, model, batch):
    images, labels = batch
    criterion = ReIDLoss("softmax+triplet", model.classifier.out_features)
    reference = copy.deepcopy(model)
    loss, _ = build_defense(name, eps=0)(model, images, labels, criterion, torch.Generator().manual_seed(0))
    clean, _ = standard_loss(reference, images, labels, criterion)
    # SES adds beta x the shift, which at eps 0 is the distance floor 1e-6.
    assert float(loss.detach()) == pytest.approx(float(clean.detach()), abs=1e-5)


def test_embedding_distance_and_triplet_margin_by_hand():
    anchor, positive, negative = torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])
    # Normalised: a = (0.6, 0.8), p = (1, 0), n = (0, 1).
    assert float(embedding_distance(anchor, positive)) == pytest.approx(math.sqrt(0.4**2 + 0.8**2))
    assert float(embedding_distance(anchor, negative)) == pytest.approx(math.sqrt(0.6**2 + 0.2**2))
    expected = math.sqrt(0.8) - math.sqrt(0.4) + 0.2
    assert float(triplet_margin(anchor, positive, negative, 0.2)) == pytest.approx(expected)
    assert float(triplet_margin(anchor, negative, positive, 0.2)) == 0.0  # max(0, ·)


def test_batch_hard_hardness_against_a_loop():
    torch.manual_seed(1)
    features, labels = torch.randn(8, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    unit = [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in features.tolist()]
    expected = []
    for i in range(8):
        positives = [math.dist(unit[i], unit[j]) for j in range(8) if labels[j] == labels[i]]
        negatives = [math.dist(unit[i], unit[j]) for j in range(8) if labels[j] != labels[i]]
        expected.append(max(positives) - min(negatives))
    assert batch_hard_hardness(features, labels).tolist() == pytest.approx(expected, abs=1e-6)


def test_random_triplets_pick_other_images_of_the_identity_and_other_identities():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    positives, negatives = random_triplets(labels, torch.Generator().manual_seed(0))
    for i in range(8):
        assert labels[positives[i]] == labels[i] and positives[i] != i
        assert labels[negatives[i]] != labels[i]


class FlatModel(nn.Module):
    """Embeddings = pixels (a 1x2 image has 2 pixels per channel, 6 values): losses can be worked by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        features = images.flatten(1) * self.scale
        return features if not self.training else (None, features)


def flat_batch():
    torch.manual_seed(2)
    return torch.rand(8, 3, 1, 2), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.parametrize("name", ["act", "hm"])
def test_triplet_defenses_at_eps_zero_by_hand(name):
    images, labels = flat_batch()
    generator = torch.Generator().manual_seed(5)
    positives, negatives = random_triplets(labels, torch.Generator().manual_seed(5))
    loss, _ = build_defense(name, eps=0)(FlatModel().train(), images, labels, None, generator)
    rows = [row.flatten().tolist() for row in images]
    unit = [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in rows]
    expected = 0.0
    for i in range(8):
        a, p, n = unit[i], unit[positives[i]], unit[negatives[i]]
        triplet = max(0.0, math.dist(a, p) - math.dist(a, n) + 0.2)
        structure = max(0.0, 1e-6 - math.dist(a, p))  # hm: L_T(a, ã = a, p; 0), d(a, a) at the floor 1e-6
        expected += triplet + (0.5 * structure if name == "hm" else 0.0)
    assert float(loss.detach()) == pytest.approx(expected / 8, abs=1e-6)


def test_act_moves_positives_toward_negatives(monkeypatch):
    images, labels = flat_batch()
    captured = []
    original = Defense.perturb

    def spy(self, *args):
        captured.append(original(self, *args))
        return captured[-1]

    monkeypatch.setattr(Defense, "perturb", spy)
    defense = build_defense("act", eps=16, step_size=4, steps=4, random_start=False)
    positives, negatives = random_triplets(labels, torch.Generator().manual_seed(5))
    defense(FlatModel().train(), images, labels, None, torch.Generator().manual_seed(5))
    moved_p, moved_n = captured[0].split(8)
    before = embedding_distance(images[positives].flatten(1), images[negatives].flatten(1))
    after = embedding_distance(moved_p.flatten(1), moved_n.flatten(1))
    assert (after < before).all()


def test_purifier_starts_as_the_identity_and_trains_only_itself(model, batch):
    images, labels = batch
    model.eval()
    purified = with_purifier(model)
    with torch.no_grad():
        assert torch.allclose(purified(images), model(images), atol=1e-6)
    frozen = {k: v.clone() for k, v in purified.state_dict().items() if not k.startswith("purifier.")}
    defense = build_defense("purifier", steps=2)
    optimizer = torch.optim.Adam([p for p in purified.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = defense(purified.train(), images, labels, None, torch.Generator().manual_seed(0))
    loss.backward()
    optimizer.step()
    for key, value in purified.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key
    with torch.no_grad():
        assert not torch.allclose(purified(images), purified.forward_unpurified(images))


def test_offline_appends_adversarial_copies(tiny_model, tiny_data):
    images = torch.stack([read_image(s.path) for s in tiny_data.train[:24]]).mul(255).round().to(torch.uint8)
    labels = torch.tensor(relabel([s.pid for s in tiny_data.train[:24]])[0])
    defense = build_defense("offline")
    more_images, more_labels = defense.prepare(tiny_model, images, labels, torch.device("cpu"))
    assert torch.equal(more_images[:24], images) and torch.equal(more_labels, torch.cat([labels, labels]))
    change = (more_images[24:].int() - images.int()).abs()
    assert change.max() == 5  # I-FGSM at eps 5 reaches the edge of the ball, in 8-bit steps


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("est", {"eps": -1}, "--defense-eps must be in \\[0, 255\\]"),
        ("ses", {"beta": -0.5}, "--defense-beta must be >= 0"),
        ("pgd-at", {"steps": 0}, "--defense-steps must be an integer >= 1"),
        ("est", {"beta": 1.0}, "--defense est does not take --defense-beta"),
        ("nope", {}, "--defense: unknown defense 'nope'"),
    ],
)
def test_bad_options(name, options, message):
    with pytest.raises(InputError, match=message):
        build_defense(name, **options)


@pytest.mark.parametrize("name", ["purifier", "offline"])
def test_defenses_that_need_a_trained_model(name, model):
    with pytest.raises(InputError, match=f"--defense {name} needs --weights"):
        build_defense(name).prepare_model(model, from_weights=False)


def test_cost_is_inner_steps_plus_one():
    assert build_defense("est", steps=3).cost == 4
    assert build_defense("hm", eps=0).cost == 1  # no inner attack at eps 0
    assert build_defense("offline").cost == 2  # copies made once, then twice the images per epoch
