"""Campaigns on tiny synthetic data: constraints, sides, goals, evaluation and saved images."""

from __future__ import annotations

import itertools

import pytest
import torch

from metricattack.attacks.attack import MetricAttack
from metricattack.experiment.chunks import AttackedSide
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.targets import first_hit_ranks
from metricattack.data.images import quantize
from metricattack.experiment.saved_images import save_adversarial_images
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import STEP_RULES, build_step_rule
from metricattack.data import load_dataset
from metricattack.errors import InputError
from metricattack.evaluation import evaluate_ranking, pairwise_distance
from campaigns import attack as attack_in, evaluate_outcome, make_campaign, run


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0, progress=False)


@pytest.fixture(scope="module")
def exact_campaign(tiny_data, tiny_model):
    """The same campaign without 8-bit rounding, to check the eps-ball exactly."""
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0,
                    quantize_images=False, progress=False)


def originals(campaign, side, indices):
    images = campaign.query.images if side == "query" else campaign.gallery.images
    return images[indices].float() / 255


@pytest.mark.parametrize(
    "attack,side,goal", list(itertools.product(sorted(STEP_RULES), ("gallery", "query", "both"), ("untargeted", "targeted")))
)
def test_every_attack_stays_in_the_linf_ball_and_the_image_range(exact_campaign, attack, side, goal):
    eps = 4.0
    outcome = attack_in(exact_campaign, AttackSetting(attack, eps, side, goal, steps=None if attack == "fgsm" else 2))
    for part in ("query", "gallery"):
        indices = getattr(outcome, f"{part}_indices")
        adversarial = getattr(outcome, f"{part}_images")
        attacked = side in (part, "both")
        assert (len(indices) > 0) == attacked
        if attacked:
            delta = adversarial - originals(exact_campaign, part, indices)
            assert delta.abs().max() <= eps / 255 + 1e-6
            assert delta.abs().max() > 0
            assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_l2_attack_stays_in_the_l2_ball(exact_campaign):
    eps = 64.0
    outcome = attack_in(exact_campaign, AttackSetting("pgd", eps, "gallery", norm="l2", steps=3))
    delta = outcome.gallery_images - originals(exact_campaign, "gallery", outcome.gallery_indices)
    assert delta.flatten(1).norm(dim=1).max() <= eps / 255 + 1e-5


def test_quantized_images_are_8_bit_and_within_eps(campaign):
    outcome = attack_in(campaign, AttackSetting("ifgsm", 3.0, "gallery", steps=3))
    scaled = outcome.gallery_images * 255
    assert torch.allclose(scaled, scaled.round(), atol=1e-4)
    delta = outcome.gallery_images - originals(campaign, "gallery", outcome.gallery_indices)
    assert delta.abs().max() <= 3 / 255 + 1e-6


def test_the_side_not_attacked_is_unchanged(campaign):
    outcome = attack_in(campaign, AttackSetting("ifgsm", 5.0, "gallery"))
    assert len(outcome.query_indices) == 0
    clean_query, _ = campaign.clean_features(campaign.targets[0])
    evaluate_outcome(campaign, outcome, campaign.targets[0])
    attacked_query, _ = outcome.features["tiny"]
    assert torch.equal(attacked_query, clean_query)


def test_gallery_attack_hits_only_images_of_query_identities(campaign):
    outcome = attack_in(campaign, AttackSetting("fgsm", 5.0, "gallery"))
    attacked_pids = set(campaign.gallery.pids[outcome.gallery_indices].tolist())
    assert attacked_pids == set(campaign.query.pids.tolist())  # no distractors (0) or junk (-1)


def random_sign_metrics(campaign, eps, generator):
    """mAP after a random +-eps perturbation of the same gallery images."""
    named = campaign.targets[0]
    outcome = attack_in(campaign, AttackSetting("fgsm", eps, "gallery"))
    images = originals(campaign, "gallery", outcome.gallery_indices)
    signs = torch.randint(0, 2, images.shape, generator=generator).float() * 2 - 1
    outcome.gallery = AttackedSide.from_images("gallery", outcome.gallery_indices, quantize((images + eps / 255 * signs).clamp(0, 1)))
    return evaluate_outcome(campaign, outcome, named)[0]["mAP"]


def test_ifgsm_lowers_map_more_than_random_noise(campaign):
    named = campaign.targets[0]
    clean = campaign.clean_metrics(named).mAP
    _, rows = run(campaign, AttackSetting("ifgsm", 8.0, "gallery"))
    noise = random_sign_metrics(campaign, 8.0, torch.Generator().manual_seed(0))
    assert clean > 0.3  # the tiny model has learnt something, so the comparison means something
    assert rows[0]["mAP"] < noise - 0.1
    assert rows[0]["mAP"] < 0.5 * clean


def target_ranks(campaign, distances, queries, targets):
    """Rank (0-based) of the first gallery image of each query's target identity."""
    order = distances.matrix()[queries].argsort(dim=1, stable=True)
    hits = campaign.gallery.pids[order] == targets[:, None]
    return hits.float().argmax(dim=1).float()


def test_targeted_attack_raises_the_target_rank(campaign):
    named = campaign.targets[0]
    setting = AttackSetting("ifgsm", 8.0, "query", "targeted")
    outcome = attack_in(campaign, setting)
    result, attacked = evaluate_outcome(campaign, outcome, named)
    _, clean = campaign.evaluate(named, *campaign.clean_features(named))
    before = target_ranks(campaign, clean, outcome.query_indices, outcome.query_targets)
    after = target_ranks(campaign, attacked, outcome.query_indices, outcome.query_targets)
    assert after.mean() < before.mean()
    assert (outcome.query_targets != campaign.query.pids[outcome.query_indices]).all()
    assert result["target_success_rank5"] >= result["target_success_rank1"] > 0


def test_fixed_target_pid_and_a_missing_one(campaign):
    target = int(campaign.gallery.pids[campaign.gallery.pids > 0][0])
    outcome = attack_in(campaign, AttackSetting("fgsm", 5.0, "query", "targeted", target_pid=target))
    assert set(outcome.query_targets.tolist()) == {target}
    assert target not in campaign.query.pids[outcome.query_indices].tolist()
    with pytest.raises(InputError, match="--target-pid 99999: no such identity"):
        attack_in(campaign, AttackSetting("fgsm", 5.0, "query", "targeted", target_pid=99999))


def test_same_seed_same_images(campaign):
    setting = AttackSetting("pgd", 4.0, "gallery", steps=2)
    first, second = attack_in(campaign, setting), attack_in(campaign, setting)
    assert torch.equal(first.gallery_images, second.gallery_images)


def test_saved_pngs_reload_to_the_metrics_computed_in_memory(campaign, tmp_path):
    named = campaign.targets[0]
    outcome, rows = run(campaign, AttackSetting("ifgsm", 5.0, "both"))
    save_adversarial_images(campaign, outcome, tmp_path)
    (tmp_path / "bounding_box_train").mkdir()
    for sample in campaign.data.train[:1]:
        (tmp_path / "bounding_box_train" / sample.path.split("/")[-1]).write_bytes(open(sample.path, "rb").read())
    reloaded = load_dataset("market1501", tmp_path)
    assert [s.pid for s in reloaded.gallery] == campaign.gallery.pids.tolist()
    query = make_campaign(reloaded, [named], [named], torch.device("cpu"), batch_size=16, progress=False)
    metrics = query.clean_metrics(named)
    assert metrics.mAP == pytest.approx(rows[0]["mAP"], abs=1e-6)
    assert metrics.rank(1) == pytest.approx(rows[0]["rank1"], abs=1e-6)


def test_batched_loss_equals_a_per_identity_loop_like_the_papers(campaign):
    """The paper's code attacks one identity at a time: its gallery images against its query features."""
    named = campaign.targets[0]
    query_features, _ = campaign.clean_features(named)
    spec = named.model.spec
    loss = NonTargetedMetricLoss(metric=spec.metric, normalize=spec.normalize)
    indices = torch.isin(campaign.gallery.pids, campaign.query.pids).nonzero().flatten()
    images = campaign.gallery.images[indices].float() / 255
    pids = campaign.gallery.pids[indices]
    with torch.no_grad():
        batched = loss(named.model(images), query_features, pids[:, None] == campaign.query.pids[None, :])
        for pid in pids.unique():
            own = pids == pid
            features = named.model(images[own])
            reference = query_features[campaign.query.pids == pid]
            per_identity = pairwise_distance(features, reference, metric=spec.metric, normalize=spec.normalize).mean(dim=1)
            assert torch.allclose(batched[own], per_identity, atol=1e-5)


def test_attack_restores_the_model_mode(tiny_model):
    tiny_model.train()
    try:
        attack = MetricAttack([tiny_model], [NonTargetedMetricLoss()], build_step_rule("ifgsm", 2 / 255, steps=1))
        images = torch.rand(4, 3, 32, 16)
        with torch.no_grad():
            reference = tiny_model.eval()(images)
        tiny_model.train()
        attack.perturb(images, [reference], torch.eye(4, dtype=torch.bool))
        assert tiny_model.training
        assert all(p.grad is None for p in tiny_model.parameters())
    finally:
        tiny_model.eval()


@pytest.mark.parametrize(
    "setting,message",
    [
        (AttackSetting(eps=0), r"--eps must be in \(0, 255\]"),
        (AttackSetting(eps=300), r"--eps must be in \(0, 255\]"),
        (AttackSetting(attack="deepfool"), "unknown attack 'deepfool'"),
        (AttackSetting(side="train"), "--side: unknown side 'train'"),
        (AttackSetting(goal="dodge"), "--goal: unknown goal 'dodge'"),
        (AttackSetting(norm="l1"), "l1"),
        (AttackSetting(target_pid=3), "--target-pid is only meaningful with --goal targeted"),
    ],
)
def test_bad_settings_raise_one_line_errors(campaign, setting, message):
    with pytest.raises(InputError, match=message) as info:
        attack_in(campaign, setting)
    assert "\n" not in str(info.value)


def test_clean_metrics_match_a_direct_evaluation(campaign):
    named = campaign.targets[0]
    query_features, gallery_features = campaign.clean_features(named)
    distances = pairwise_distance(query_features, gallery_features, metric="euclidean", normalize=True)
    direct = evaluate_ranking(distances, campaign.query.pids, campaign.gallery.pids, campaign.query.camids, campaign.gallery.camids)
    assert campaign.clean_metrics(named).mAP == pytest.approx(direct.mAP)


def paper_gallery_attack(model, query, gallery, attack: str, epsilon: int) -> torch.Tensor:
    """Gen_Adv.py for one identity: FGSM, or MI_FGSM (I-FGSM with momentum 0), on L2-normalised features,
    loss = sum over (query, gallery) pairs of MSELoss, steps of 1/255, int(min(eps + 4, 1.25 eps)) of them."""

    def extract(images):
        features = model(images)
        return features / features.norm(dim=1, keepdim=True)

    def criterion(query_features, gallery_features):
        return sum(torch.nn.functional.mse_loss(q, g) for q in query_features for g in gallery_features)

    query_features = extract(query).detach()
    x_adv = gallery.clone().requires_grad_(True)
    if attack == "fgsm":
        (x_grad,) = torch.autograd.grad(criterion(query_features, extract(x_adv)), x_adv)
        return (x_adv.detach() + epsilon / 255 * x_grad.sign()).clamp(0, 1)
    momentum = 1.0 if attack == "mifgsm" else 0.0
    lower, upper = (gallery - epsilon / 255.0).clamp(min=0.0), (gallery + epsilon / 255.0).clamp(max=1.0)
    grad = None
    for _ in range(int(min(epsilon + 4, 1.25 * epsilon))):
        (x_grad,) = torch.autograd.grad(criterion(query_features, extract(x_adv)), x_adv)
        x_grad = x_grad / x_grad.abs().flatten(1).mean(dim=1).view(-1, 1, 1, 1).clamp(min=1e-12)
        grad = x_grad if grad is None else momentum * grad + x_grad
        x_adv = torch.min(torch.max(x_adv.detach() + 1 / 255.0 * grad.sign(), lower), upper).requires_grad_(True)
    return x_adv.detach()


@pytest.mark.parametrize("attack", ["fgsm", "ifgsm", "mifgsm"])
def test_gallery_attack_makes_the_papers_pixels(campaign, attack):
    """The default objective and --schedule paper reproduce Gen_Adv.py's per-identity loop, 8-bit rounded."""
    model = campaign.sources[0].model
    outcome = attack_in(campaign, AttackSetting(attack, 5.0, "gallery"))
    expected = torch.empty_like(outcome.gallery_images)
    gallery_pids = campaign.gallery.pids[outcome.gallery_indices]
    for pid in gallery_pids.unique().tolist():
        rows = gallery_pids == pid
        query = campaign.query.images[campaign.query.pids == pid].float() / 255
        gallery = campaign.gallery.images[outcome.gallery_indices[rows]].float() / 255
        expected[rows] = quantize(paper_gallery_attack(model, query, gallery, attack, 5))
    same = (outcome.gallery_images == expected).float().mean().item()
    # Batching changes float rounding, which may flip the sign of a near-zero gradient entry: allow 1e-4.
    assert same >= 0.9999
    assert not torch.equal(outcome.gallery_images, originals(campaign, "gallery", outcome.gallery_indices))
    if attack == "ifgsm":  # the mean euclidean distance weights references by 1/distance: other pixels
        euclidean = attack_in(campaign, AttackSetting(attack, 5.0, "gallery", attack_distance="euclidean"))
        assert (euclidean.gallery_images == expected).float().mean().item() < same - 1e-3


def test_gradient_passes_count_every_image_step(campaign):
    paper = attack_in(campaign, AttackSetting("ifgsm", 5.0, "gallery"))
    assert paper.gradient_passes == len(paper.gallery_indices) * 6
    fast = attack_in(campaign, AttackSetting("ifgsm", 5.0, "gallery", schedule="fast"))
    assert len(fast.gallery_indices) <= fast.gradient_passes < len(fast.gallery_indices) * 5


def test_first_hit_ranks_by_hand():
    distances = torch.tensor([[0.3, 0.1, 0.2, 0.4], [0.1, 0.2, 0.3, 0.4]])
    valid = torch.tensor([[True, True, False, True], [True, True, True, True]])
    hits = torch.tensor([[True, False, True, False], [False, False, False, False]])
    # Row 0: valid order 1 (0.1), 0 (0.3), 3 (0.4); item 2 is a hit but not valid; item 0 is rank 2. Row 1: none.
    assert first_hit_ranks(distances, valid, hits).tolist() == [2.0, 5.0]


@pytest.mark.parametrize("side,goal", list(itertools.product(("gallery", "query"), ("untargeted", "targeted"))))
def test_fast_schedule_stays_in_the_ball_and_never_costs_more_than_its_steps(exact_campaign, side, goal):
    outcome = attack_in(exact_campaign, AttackSetting("mifgsm", 6.0, side, goal, schedule="fast"))
    indices = getattr(outcome, f"{side}_indices")
    delta = getattr(outcome, f"{side}_images") - originals(exact_campaign, side, indices)
    assert 0 < delta.abs().max() <= 6 / 255 + 1e-6
    assert len(indices) <= outcome.gradient_passes <= 5 * len(indices)
    assert outcome.forward_passes <= 4 * len(indices)  # one goal check per remaining image after steps 1-4


def test_attacking_both_sides_is_at_least_as_strong_as_either_side(campaign):
    # Pushing both sides from the other side's clean features moved an identity's query and gallery images
    # together, so a large eps left mAP near clean; the gallery now moves away from the attacked queries.
    maps = {side: run(campaign, AttackSetting("pgd", 16.0, side, steps=10))[1][0]["mAP"] for side in ("query", "gallery", "both")}
    clean = campaign.clean_metrics(campaign.targets[0]).mAP
    assert maps["both"] <= min(maps["query"], maps["gallery"]) + 0.02 and maps["both"] < 0.5 * clean, (maps, clean)
