"""Step rules with tiny objectives: constraints, identities between rules, hand-worked steps, arguments."""

from __future__ import annotations

import pytest
import torch

from metricattack.attacks.steps import STEP_RULES, FGSM, IFGSM, MIFGSM, PGD, build_step_rule, default_iterations, pixels_to_fraction
from metricattack.errors import InputError, NumericalError

EPS = {"linf": 8 / 255, "l2": 0.3}


def quadratic_objective(seed: int = 0):
    """Per-image ||W x - c||^2 through a fixed random linear map (convex, so ascent moves it up)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(5, 3 * 4 * 2, generator=generator)
    target = torch.randn(5, generator=generator)
    return lambda x: ((x.flatten(1) @ weight.T - target) ** 2).sum(dim=1)


def images(seed: int = 0) -> torch.Tensor:
    """Six 3x4x2 images in [0,1], some pixels on the boundaries so that clipping matters."""
    x = torch.rand(6, 3, 4, 2, generator=torch.Generator().manual_seed(seed))
    x[0, 0], x[1, 1] = 0.0, 1.0
    return x


def perturbation_sizes(adversarial: torch.Tensor, originals: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (adversarial - originals).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


@pytest.mark.parametrize("name", sorted(STEP_RULES))
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_rule_stays_in_the_ball_and_the_range_and_ascends(name, norm):
    options = {"norm": norm} if name == "fgsm" else {"norm": norm, "steps": 5}
    rule = build_step_rule(name, EPS[norm], **options)
    originals, objective = images(), quadratic_objective()
    adversarial = rule.run(originals, objective, torch.Generator().manual_seed(0))
    sizes = perturbation_sizes(adversarial, originals, norm)
    assert (sizes <= EPS[norm] + 1e-6).all() and (sizes > 0).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert not adversarial.requires_grad
    assert (objective(adversarial) > objective(originals)).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_default_iteration_count_stays_in_the_ball(norm):
    rule = IFGSM(EPS[norm], norm=norm)  # l2: default_iterations(0.3 * 255) = 79 steps of 1/255
    adversarial = rule.run(images(), quadratic_objective())
    assert (perturbation_sizes(adversarial, images(), norm) <= EPS[norm] + 1e-6).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_is_one_ifgsm_step_of_size_eps(norm):
    eps = EPS[norm]
    one_step = IFGSM(eps, step_size=eps, steps=1, norm=norm).run(images(), quadratic_objective())
    assert torch.equal(FGSM(eps, norm=norm).run(images(), quadratic_objective()), one_step)


def test_mifgsm_without_momentum_is_ifgsm_under_linf():
    plain = IFGSM(5 / 255, steps=4).run(images(), quadratic_objective())
    assert torch.equal(MIFGSM(5 / 255, steps=4, momentum=0.0).run(images(), quadratic_objective()), plain)


def test_hand_worked_fgsm_step():
    # objective = 3 a - 2 b on a two-pixel image: gradient (3, -2).
    x = torch.tensor([0.5, 0.01]).view(1, 1, 1, 2)
    weights = torch.tensor([3.0, -2.0]).view(1, 1, 1, 2)

    def linear(z: torch.Tensor) -> torch.Tensor:
        return (z * weights).flatten(1).sum(dim=1)

    linf = FGSM(4 / 255).run(x, linear)  # sign (1, -1); the second pixel is clipped at 0
    assert torch.allclose(linf.flatten(), torch.tensor([0.5 + 4 / 255, 0.0]), rtol=0, atol=1e-7)
    l2 = FGSM(0.13, norm="l2").run(x, linear)  # unit direction (3, -2) / sqrt(13)
    expected = torch.tensor([0.5 + 0.13 * 3 / 13**0.5, max(0.01 - 0.13 * 2 / 13**0.5, 0.0)])
    assert torch.allclose(l2.flatten(), expected, rtol=0, atol=1e-7)


def test_hand_worked_momentum_overshoots():
    # One pixel, objective -(a - t)^2 with t = a0 + 1.5/255. Gradient signs: +, +, - (after two steps a > t).
    # I-FGSM: a0 + 1/255 + 1/255 - 1/255. MI-FGSM (normalised grads +1, +1, -1): g = 1, 2, 1: three steps up.
    a0, t = 0.5, 0.5 + 1.5 / 255
    x = torch.full((1, 1, 1, 1), a0, dtype=torch.float64)

    def objective(z: torch.Tensor) -> torch.Tensor:
        return -((z - t) ** 2).flatten(1).sum(dim=1)

    plain = IFGSM(10 / 255, steps=3).run(x, objective)
    momentum = MIFGSM(10 / 255, steps=3).run(x, objective)
    assert float(plain) == pytest.approx(a0 + 1 / 255, abs=1e-12)
    assert float(momentum) == pytest.approx(a0 + 3 / 255, abs=1e-12)


def test_projection_after_every_step():
    # A linear objective pushes straight out; 10 steps of 1/255 with eps 3/255 end on the ball's face.
    x = torch.full((1, 1, 2, 2), 0.5)
    adversarial = IFGSM(3 / 255, steps=10).run(x, lambda z: z.flatten(1).sum(dim=1))
    assert torch.allclose(adversarial, x + 3 / 255, rtol=0, atol=1e-7)
    l2 = IFGSM(0.02, step_size=0.01, steps=10, norm="l2").run(x, lambda z: z.flatten(1).sum(dim=1))
    assert torch.allclose(l2, x + 0.01, rtol=0, atol=1e-7)  # length 0.02 along (1,1,1,1)/2


@pytest.mark.parametrize("name", ["ifgsm", "mifgsm"])
def test_an_image_does_not_depend_on_its_batch(name):
    rule = build_step_rule(name, 6 / 255, steps=3)
    together = rule.run(images(), quadratic_objective())
    alone = rule.run(images()[2:3], quadratic_objective())
    assert torch.allclose(together[2:3], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_random_start_follows_the_generator(norm):
    rule = PGD(EPS[norm], steps=2, norm=norm)
    first = rule.run(images(), quadratic_objective(), torch.Generator().manual_seed(3))
    assert torch.equal(first, rule.run(images(), quadratic_objective(), torch.Generator().manual_seed(3)))
    assert not torch.equal(first, rule.run(images(), quadratic_objective(), torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("training", [True, False])
def test_parameters_get_no_gradient_and_the_mode_is_kept(training):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    model.train(training)
    with torch.no_grad():  # the rule needs gradients even when the caller disabled them
        adversarial = MIFGSM(4 / 255, steps=2).run(images(), lambda x: model(x).pow(2).sum(dim=1))
    assert not torch.equal(adversarial, images())
    assert model.training is training and all(p.grad is None for p in model.parameters())


def test_bad_objective_and_images_are_programming_errors():
    with pytest.raises(ValueError, match=r"one value per image \(6,\), got \(\)"):
        FGSM(0.1).run(images(), lambda x: x.sum())
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        FGSM(0.1).run(images() * 255, quadratic_objective())


@pytest.mark.parametrize("eps,expected", [(1, 1), (2, 2), (4, 5), (5, 6), (8, 10), (16, 20), (20, 24), (0.5, 1)])
def test_default_iterations(eps, expected):
    # int(min(eps + 4, 1.25 eps)): 1 -> 1.25, 2 -> 2.5, 4 -> 5, 5 -> 6.25, 8 -> 10, 16 -> 20, 20 -> 24, 0.5 -> 0.625 -> 1
    assert default_iterations(eps) == expected
    assert IFGSM(eps / 255).steps == MIFGSM(eps / 255).steps == expected


def test_defaults():
    assert IFGSM(4 / 255).step_size == MIFGSM(4 / 255).step_size == 1 / 255
    assert MIFGSM(4 / 255).momentum == 1.0 and IFGSM(4 / 255).momentum is None
    pgd = PGD(8 / 255)
    assert pgd.steps == 10 and pgd.step_size == pytest.approx(2.5 * 8 / 255 / 10) and pgd.random_start
    assert pixels_to_fraction(8, "--eps") == 8 / 255


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: build_step_rule("cw", 0.1), r"--attack: unknown attack 'cw' \(expected one of fgsm, ifgsm, mifgsm, pgd, apgd\)"),
        (lambda: build_step_rule("ifgsm", 0.1, norm="l1"), "--norm: unknown norm 'l1'"),
        (lambda: build_step_rule("ifgsm", 0.1, steps=0), "--steps must be an integer >= 1, got 0"),
        (lambda: build_step_rule("pgd", 0.1, steps=0), "--steps must be an integer >= 1, got 0"),
        (lambda: build_step_rule("pgd", 0.1, steps=2.5), "--steps must be an integer >= 1, got 2.5"),
        (lambda: build_step_rule("ifgsm", 0.1, step_size=0.0), "--step-size must be > 0"),
        (lambda: build_step_rule("mifgsm", 0.1, momentum=-1.0), "--momentum must be >= 0"),
        (lambda: build_step_rule("fgsm", 0.1, steps=3), r"--attack fgsm does not take --steps \(it takes --norm\)"),
        (lambda: build_step_rule("pgd", 0.1, momentum=1.0), "--attack pgd does not take --momentum"),
        (lambda: build_step_rule("pgd", 0.0), r"eps must be in \(0, 1\] as a fraction of 1"),
        (lambda: FGSM(8.0), r"eps must be in \(0, 1\] as a fraction of 1 \(pixels / 255\), got 8"),
        (lambda: pixels_to_fraction(300, "--eps"), r"--eps must be in \(0, 255\] pixel units \(out of 255\), got 300"),
        (lambda: pixels_to_fraction(0, "--step-size"), r"--step-size must be in \(0, 255\]"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_repr_shows_every_setting():
    assert repr(MIFGSM(5 / 255)) == (
        "MIFGSM(eps=0.0196078 (5/255), step_size=0.00392157 (1/255), steps=6, norm='linf', "
        "random_start=False, momentum=1.0, restarts=1, keep_best=False, decay='constant', early_stop=False)"
    )
    assert repr(PGD(0.5, norm="l2")).startswith("PGD(eps=0.5 (127.5/255), step_size=0.125 (31.88/255), steps=10, norm='l2', random_start=True")


def oscillating_objective():
    """Per-image sin of a pixel sum: sign ascent with a large step overshoots, so later iterates can be worse."""
    return lambda x: torch.sin(20 * x.flatten(1).sum(dim=1))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_keep_best_never_loses_to_fewer_steps(norm):
    # With the same random start the 12-step iterates include the 4-step ones, so the best can only rise.
    objective, eps = oscillating_objective(), EPS[norm]
    results = {}
    for steps in (4, 12):
        rule = PGD(eps, step_size=eps, steps=steps, norm=norm)
        results[steps] = objective(rule.run(images(), objective, torch.Generator().manual_seed(3)))
    assert (results[12] >= results[4]).all()
    last_only = PGD(eps, step_size=eps, steps=12, norm=norm, keep_best=False)
    without = objective(last_only.run(images(), objective, torch.Generator().manual_seed(3)))
    assert (results[12] >= without).all() and (results[12] > without).any()


def test_restarts_keep_the_best_of_each_run():
    objective, eps = oscillating_objective(), 8 / 255
    generator = torch.Generator().manual_seed(5)
    singles = [objective(PGD(eps, steps=3).run(images(), objective, generator)) for _ in range(3)]
    best = objective(PGD(eps, steps=3, restarts=3).run(images(), objective, torch.Generator().manual_seed(5)))
    assert torch.allclose(best, torch.stack(singles).amax(dim=0))


def test_restarts_must_be_a_positive_integer():
    with pytest.raises(InputError, match="--restarts must be an integer >= 1"):
        PGD(8 / 255, restarts=0)


@pytest.mark.parametrize(
    "objective",
    [
        lambda x: x.flatten(1).sum(dim=1) * float("nan"),  # a model that outputs NaN
        lambda x: (x - x.detach()).flatten(1).abs().sqrt().sum(dim=1),  # finite value, infinite gradient at 0
    ],
)
def test_non_finite_loss_or_gradient_stops_the_attack(objective):
    with pytest.raises(NumericalError, match=r"^non-finite attack loss or gradient \(step 1 of 3") as info:
        IFGSM(4 / 255, steps=3).run(images(), objective)
    assert "\n" not in str(info.value) and not isinstance(info.value, InputError)  # the input was fine: not exit code 2


def test_fast_schedule_decays_linearly_from_eps():
    # One pixel pulled toward t = a0 + 0.3 eps by steps eps, 0.8, 0.6, 0.4, 0.2 eps: signs +, -, +, -, -.
    eps, a0 = 10 / 255, 0.5
    x = torch.full((1, 1, 1, 1), a0, dtype=torch.float64)
    rule = IFGSM(eps, schedule="fast")
    assert rule.step_sizes() == pytest.approx([eps, 0.8 * eps, 0.6 * eps, 0.4 * eps, 0.2 * eps])
    adversarial = rule.run(x, lambda z: -((z - (a0 + 0.3 * eps)) ** 2).flatten(1).sum(dim=1))
    assert float(adversarial) == pytest.approx(a0 + 0.2 * eps, abs=1e-12)
    assert MIFGSM(eps, schedule="paper").steps == default_iterations(10) and IFGSM(eps, steps=3, schedule="fast").steps == 3
    with pytest.raises(InputError, match="--schedule: unknown schedule 'slow'"):
        IFGSM(eps, schedule="slow")
    with pytest.raises(InputError, match="--attack pgd does not take --schedule"):
        build_step_rule("pgd", eps, schedule="fast")


@pytest.mark.parametrize("name", ["ifgsm", "mifgsm"])
def test_early_stop_freezes_images_where_their_goal_is_reached(name):
    # Odd images are done after their first step: they must equal a 1-step run; the others a full run
    # (for MI-FGSM, with their own momentum). The objective sees only the images still iterated.
    rule = build_step_rule(name, 6 / 255, steps=4)
    stopping = build_step_rule(name, 6 / 255, steps=4)
    stopping.early_stop = True
    objective, seen = quadratic_objective(), []

    def tracked(x, rows):
        seen.append(rows.tolist())
        return objective(x)

    adversarial = stopping.run(images(), tracked, done=lambda x, rows: rows % 2 == 1)
    full = rule.run(images(), objective)
    one_step = build_step_rule(name, 6 / 255, steps=1).run(images(), objective)
    assert torch.equal(adversarial[0::2], full[0::2])
    assert torch.equal(adversarial[1::2], one_step[1::2])
    assert seen == [[0, 1, 2, 3, 4, 5]] + [[0, 2, 4]] * 3
