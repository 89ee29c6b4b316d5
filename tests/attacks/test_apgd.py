"""APGD: its checkpoints and halvings by hand, its loop against a plain scalar loop, its constraints, seeds,
best-iterate keeping, early stopping and pass counts, and its strength against I-FGSM on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from metricattack.attacks.apgd import APGD, StepSizeSchedule, checkpoints
from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import IFGSM, build_step_rule
from metricattack.data.images import as_fraction, read_images
from metricattack.errors import InputError
from metricattack.experiment.sanity import ZeroBallSetting
from metricattack.experiment.setting import AttackSetting
from metricattack.experiment.registry import check_setting

from .test_steps import EPS, images, quadratic_objective


def wavy_objective():
    """Per-image sin of 40 x a weighted pixel sum: ascent from different starts ends at different maxima."""
    weights = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(7))
    return lambda x: torch.sin(40 * (x * weights).flatten(1).sum(dim=1))


@pytest.mark.parametrize(
    "steps,expected",
    [
        # p_j = 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05): the increments .22, .19, .16, .13, .10, .07, .06, .06
        (100, [0, 22, 41, 57, 70, 80, 87, 93, 99]),
        (20, [0, 5, 9, 12, 14, 16, 18, 19]),  # ceil(4.4, 8.2, 11.4, 14, 16, 17.4, 18.6); 19.8 -> 20 is not below 20
        (10, [0, 3, 5, 6, 7, 8, 9]),  # ceil(2.2, 4.1, 5.7, 7, 8, 8.7); 9.3 and 9.9 -> 10 drop out
        (1, [0]),
    ],
)
def test_checkpoints_by_hand(steps, expected):
    assert checkpoints(steps) == expected


def hand_sequences() -> dict[str, list[float]]:
    """f(x^(0))..f(x^(100)) of five images, built so that their halvings can be worked out by hand."""
    rising = [float(k) for k in range(101)]
    flat = [0.0] * 101
    stalled = [1000.0] + [float(k) for k in range(1, 101)]  # rises every step but never beats f(x^(0))
    plateau = [float(min(k, 41)) for k in range(101)]

    def boundary(flat_steps: int) -> list[float]:
        """Rising to 41, then ``flat_steps`` flat steps and rises up to k = 57, then flat at the value reached."""
        values = [float(k) for k in range(42)]
        values += [41.0] * flat_steps + [41.0 + r for r in range(1, 16 - flat_steps + 1)]
        return values + [values[-1]] * (101 - len(values))

    return {"rising": rising, "flat": flat, "stalled": stalled, "plateau": plateau,
            "rises12": boundary(4), "rises11": boundary(5)}  # fmt: skip


def test_step_size_schedule_halves_where_worked_out_by_hand():
    # Checkpoints for N = 100: 22, 41, 57, 70, 80, 87, 93, 99; intervals 22, 19, 16, 13, 10, 7, 6, 6, so condition 1
    # (rises < 0.75 x interval) means fewer than 16.5, 14.25, 12, 9.75, 7.5, 5.25, 4.5, 4.5 rises.
    # - rising: always rises and improves: never halved.
    # - flat: never rises: condition 1 at every checkpoint.
    # - stalled: rises 21 times in 1..22 but its best stays f(x^(0)) = 1000: condition 2 at 22. Restarted at the best,
    #   the next step is no rise, yet 23..41 has 18 rises (>= 14.25) and condition 2 is off after a halving; at 57
    #   condition 2 again, and so on: halved at 22, 57, 80, 93.
    # - plateau: rises and improves until 41, then flat: condition 1 from 57 on.
    # - rises12: 12 rises in 42..57, exactly 0.75 x 16, not fewer, and an improvement: not halved at 57; flat after.
    # - rises11: 11 rises in 42..57: halved at 57 (condition 1 alone, its best improved); flat after.
    expected = {
        "rising": [],
        "flat": [22, 41, 57, 70, 80, 87, 93, 99],
        "stalled": [22, 57, 80, 93],
        "plateau": [57, 70, 80, 87, 93, 99],
        "rises12": [70, 80, 87, 93, 99],
        "rises11": [57, 70, 80, 87, 93, 99],
    }
    names = list(hand_sequences())
    values = torch.tensor([hand_sequences()[name] for name in names], dtype=torch.float64).T  # (101, images)
    schedule = StepSizeSchedule(100, torch.full((len(names),), 0.5, dtype=torch.float64), values[0])
    halvings = {name: [] for name in names}
    for k in range(1, 101):
        improved, halved = schedule.observe(k, values[k])
        assert improved.tolist() == (values[k] > values[:k].amax(dim=0)).tolist()
        for name, flag in zip(names, halved.tolist()):
            if flag:
                halvings[name].append(k)
    assert halvings == expected
    assert schedule.sizes.tolist() == [0.5 / 2 ** len(expected[name]) for name in names]


def two_pixel_objective(z: torch.Tensor) -> torch.Tensor:
    """f(a, b) = sin(9 a) + cos(7 b) per image (B,1,1,2): many local maxima, so steps overshoot and halve."""
    a, b = z[:, 0, 0, 0], z[:, 0, 0, 1]
    return torch.sin(9 * a) + torch.cos(7 * b)


def slow_apgd(pixels: list[float], noise: list[float], eps: float, steps: int, points: set[int]) -> list[float]:
    """Algorithm 1 for one L∞ image of two pixels, in plain floats, with f and its gradient written out."""

    def f(p):
        return math.sin(9 * p[0]) + math.cos(7 * p[1])

    def grad(p):
        return [9 * math.cos(9 * p[0]), -7 * math.sin(7 * p[1])]

    def project(p):
        return [min(max(v, x - eps, 0.0), x + eps, 1.0) for v, x in zip(p, pixels)]

    def sign(v):
        return (v > 0) - (v < 0)

    largest = max(abs(t) for t in noise)
    current = project([x + eps * t / largest for x, t in zip(pixels, noise)])
    previous, eta, g = current, 2 * eps, grad(current)
    best, best_value, best_grad = current, f(current), g
    last, rises, last_check, best_at_check, halved_before = best_value, 0, 0, best_value, False
    for k in range(1, steps + 1):
        alpha = 1.0 if k == 1 else 0.75
        z = project([c + eta * sign(gi) for c, gi in zip(current, g)])
        previous, current = current, project([c + alpha * (zi - c) + (1 - alpha) * (c - p) for c, zi, p in zip(current, z, previous)])
        value, g = f(current), grad(current)
        rises += value > last
        last = value
        if value > best_value:
            best, best_value, best_grad = current, value, g
        if k in points:
            halve = rises < 0.75 * (k - last_check) or (not halved_before and best_value == best_at_check)
            if halve:
                eta, current, g, last = eta / 2, best, best_grad, best_value
            halved_before, best_at_check, rises, last_check = halve, best_value, 0, k
    return best


def test_the_loop_matches_algorithm_1_written_as_a_plain_loop():
    eps, steps, seed = 0.3, 20, 4
    x = torch.rand(8, 1, 1, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0  # on the boundary: the projection clips
    adversarial = APGD(eps, steps=steps).run(x, two_pixel_objective, torch.Generator().manual_seed(seed))
    # The random start draws t uniform in [-1,1] per pixel from the generator, as the rule does.
    noise = 2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1
    points = {5, 9, 12, 14, 16, 18, 19}  # checkpoints(20), worked out above
    for image in range(len(x)):
        expected = slow_apgd(x[image].flatten().tolist(), noise[image].flatten().tolist(), eps, steps, points)
        assert adversarial[image].flatten().tolist() == pytest.approx(expected, abs=1e-12)
    assert not torch.equal(adversarial, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_in_the_ball_and_the_range_and_follows_the_seed(norm):
    rule = APGD(EPS[norm], steps=30, norm=norm, restarts=2)
    objective = wavy_objective()  # many local maxima: where APGD ends depends on where it starts
    first = rule.run(images(), objective, torch.Generator().manual_seed(3))
    delta = (first - images()).flatten(1)
    sizes = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert (sizes <= EPS[norm] + 1e-6).all() and (sizes > 0).all()
    assert first.min() >= 0 and first.max() <= 1 and not first.requires_grad
    assert torch.equal(first, rule.run(images(), objective, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, rule.run(images(), objective, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_zero_ball_returns_the_clean_images_exactly(norm):
    rule = ZeroBallSetting("apgd", 0.0, "gallery", norm=norm, steps=6, restarts=2).step_rule()
    assert isinstance(rule.rule, APGD) and rule.eps == 1 / 255  # built through the constructor; the mask makes the ball 0
    assert torch.equal(rule.run(images(), quadratic_objective(), torch.Generator().manual_seed(0)), images())


def test_the_kept_iterate_is_the_best_evaluated_over_every_step_and_restart():
    objective, seen = two_pixel_objective, []

    def recorded(z: torch.Tensor) -> torch.Tensor:
        values = objective(z)
        seen.append(values.detach())
        return values

    x = torch.rand(6, 1, 1, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    adversarial = APGD(0.2, steps=12, restarts=3).run(x, recorded, torch.Generator().manual_seed(0))
    assert len(seen) == 3 * 13  # x^(0)..x^(12), three times
    assert torch.equal(objective(adversarial), torch.stack(seen).amax(dim=0))


def test_restarts_never_lower_the_kept_objective():
    # The first of three restarts draws the same start as a single run, so its best is among the candidates.
    x = torch.rand(6, 1, 1, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    one = two_pixel_objective(APGD(0.2, steps=10).run(x, two_pixel_objective, torch.Generator().manual_seed(0)))
    three = two_pixel_objective(APGD(0.2, steps=10, restarts=3).run(x, two_pixel_objective, torch.Generator().manual_seed(0)))
    assert (three >= one).all() and (three > one).any()


def test_early_stop_freezes_images_at_the_iterate_that_reached_their_goal():
    # Odd images are done after the first step: they leave with x^(1) = P(x^(0) + 2 eps sign(grad)), and later
    # restarts leave them alone; even images run the whole budget, as without early stopping.
    eps, seen = 6 / 255, []

    def tracked(x, rows):
        seen.append(rows.tolist())
        return quadratic_objective()(x)

    stopping = APGD(eps, steps=4, restarts=2)
    stopping.early_stop = True
    adversarial = stopping.run(images(), tracked, torch.Generator().manual_seed(1), done=lambda x, rows: rows % 2 == 1)
    full = APGD(eps, steps=4, restarts=2).run(images(), quadratic_objective(), torch.Generator().manual_seed(1))
    assert torch.equal(adversarial[0::2], full[0::2])
    noise = 2 * torch.rand(images().shape, generator=torch.Generator().manual_seed(1)) - 1  # the start: eps t / max|t|
    start = (images() + eps * noise / noise.flatten(1).abs().amax(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    start.requires_grad_(True)
    (grad,) = torch.autograd.grad(quadratic_objective()(start).sum(), start)
    first_step = torch.min(torch.max(start.detach() + 2 * eps * grad.sign(), images() - eps), images() + eps).clamp(0, 1)
    assert torch.allclose(adversarial[1::2], first_step[1::2], rtol=0, atol=1e-7)
    assert seen[:2] == [[0, 1, 2, 3, 4, 5]] * 2 and seen[2:5] == [[0, 2, 4]] * 3  # x^(0), x^(1) all; x^(2..4) the even
    assert seen[5:] == [[0, 2, 4]] * 5  # the second restart: only the images still short of their goal


def test_passes_are_counted_like_the_other_rules():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 4))
    references = torch.randn(3, 4)
    own = torch.tensor([[True, False, False]] * 6)
    attack = MetricAttack([model], [NonTargetedMetricLoss()], APGD(4 / 255, steps=7, restarts=2))
    attack.perturb(images(), [references], own, generator=torch.Generator().manual_seed(0))
    assert (attack.gradient_passes, attack.forward_passes) == (6 * 7 * 2, 6 * 2)  # x^(0..6) with gradients, x^(7) without
    assert all(p.grad is None for p in model.parameters())


def test_step_size_is_refused_and_options_are_checked():
    with pytest.raises(InputError, match=r"--attack apgd does not take --step-size \(it takes --steps, --norm, --restarts\)"):
        build_step_rule("apgd", 4 / 255, step_size=1 / 255)
    with pytest.raises(InputError, match="--attack apgd does not take --step-size"):
        check_setting(AttackSetting("apgd", 4.0, step_size=1.0))
    with pytest.raises(InputError, match="--attack apgd does not take --schedule"):
        check_setting(AttackSetting("apgd", 4.0, schedule="fast"))
    with pytest.raises(InputError, match="--steps must be an integer >= 1, got 0"):
        APGD(4 / 255, steps=0)
    with pytest.raises(InputError, match="--restarts must be an integer >= 1"):
        APGD(4 / 255, restarts=0)
    rule = AttackSetting("apgd", 4.0, norm="l2", restarts=3).step_rule()
    assert (rule.steps, rule.norm, rule.restarts, rule.eps) == (100, "l2", 3, 4 / 255)
    assert repr(APGD(8 / 255, steps=50)) == (
        "APGD(eps=0.0313725 (8/255), steps=50, norm='linf', restarts=1, rho=0.75, alpha=0.75, early_stop=False)"
    )


@pytest.fixture(scope="module")
def tiny_gallery_objective(tiny_data, tiny_model):
    """The paper's gallery objective on the tiny model: 24 gallery images pushed from their identity's queries."""
    query = list(tiny_data.query)
    gallery = [s for s in tiny_data.gallery if s.pid in {q.pid for q in query}][:24]
    with torch.no_grad():
        references = tiny_model(as_fraction(read_images(query)))
    own = torch.tensor([[g.pid == q.pid for q in query] for g in gallery])
    loss = NonTargetedMetricLoss("sqeuclidean", normalize=True)
    return as_fraction(read_images(gallery)), lambda x: loss(tiny_model(x), references, own)


def test_apgd_reaches_at_least_the_objective_of_ifgsm_on_the_tiny_model(tiny_gallery_objective):
    gallery, objective = tiny_gallery_objective
    eps = 4 / 255
    with torch.no_grad():
        clean = objective(gallery).mean()
    ifgsm = IFGSM(eps, steps=20).run(gallery, objective)
    apgd = APGD(eps, steps=20).run(gallery, objective, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ifgsm_value, apgd_value = objective(ifgsm).mean(), objective(apgd).mean()
    assert ifgsm_value > clean and apgd_value >= ifgsm_value, (float(clean), float(ifgsm_value), float(apgd_value))


def test_more_iterations_do_not_lower_the_kept_objective_on_the_tiny_model(tiny_gallery_objective):
    # The checkpoints depend on the budget, so APGD-2N does not extend APGD-N's path and per image its best could
    # fall short of N's (within one run the kept best never falls: see the test above); on average it must not.
    gallery, objective = tiny_gallery_objective
    results = {}
    for steps in (10, 20):
        adversarial = APGD(4 / 255, steps=steps).run(gallery, objective, torch.Generator().manual_seed(0))
        with torch.no_grad():
            results[steps] = objective(adversarial)
    assert results[20].mean() >= results[10].mean(), (results[10], results[20])
