"""APGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, Algorithm 1): projected gradient ascent with momentum whose step
size halves, per image, when its objective stops rising, so there is no step size to tune.

Like every step rule it knows nothing about re-ID: ``run(images, objective)`` maximises any objective
returning one value per image (B,). eps is a fraction of 1; images are in [0,1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metricattack.attacks.norms import NORMS, masked, per_image
from metricattack.attacks.step_rule import StepRule, check_finite, check_steps, checked_images, checked_mask

RHO = 0.75  # condition 1: the objective rose in fewer than this fraction of the iterations since the last checkpoint
MOMENTUM = 0.75  # alpha: the weight of the new gradient step against the previous move
INITIAL_STEP = 2.0  # eta at the start, in units of eps
# The checkpoints' fractions p_j of the budget, in hundredths (exact integers, so ceil(p_j N) has no float error):
FIRST_CHECKPOINT, INTERVAL_SHRINK, MIN_INTERVAL = 22, 3, 6


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints w_j = ceil(p_j N) below N = ``steps``, distinct and in order.

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): for N = 100, w = 0, 22, 41,
    57, 70, 80, 87, 93, 99.
    """
    hundredths = [0, FIRST_CHECKPOINT]
    while hundredths[-1] < 100:
        hundredths.append(hundredths[-1] + max(hundredths[-1] - hundredths[-2] - INTERVAL_SHRINK, MIN_INTERVAL))
    return sorted({w for w in (-(-p * steps // 100) for p in hundredths) if w < steps})


class StepSizeSchedule:
    """APGD's step sizes eta (B,), one per image, halved at the checkpoints w_j of ``checkpoints(steps)``.

    ``observe(k, values)`` takes f(x^(k)) (B,) for k = 1..steps in order (``first_values`` is f(x^(0)))
    and says which images improved on their best value and which have their step halved at k: none
    unless k = w_j (j >= 1), where an image's step is halved when

        condition 1: #{i in [w_{j-1}, w_j) : f(x^(i+1)) > f(x^(i))} < rho (w_j - w_{j-1})
        condition 2: its step was not halved at w_{j-1} and f_max^(w_j) = f_max^(w_{j-1})

    (w_0 = 0 halves nothing, so condition 2 may hold at w_1). The caller restarts such an image from its
    best point, so its next rise is measured from f_max. As in the authors' code the check at w_j comes
    as soon as f(x^(w_j)) is known, and the restart replaces x^(w_j).
    """

    def __init__(self, steps: int, sizes: torch.Tensor, first_values: torch.Tensor, rho: float = RHO) -> None:
        self.points = set(checkpoints(steps)) - {0}
        self.rho = rho
        self.sizes = sizes.clone()  # (B,)
        self.last = first_values.clone()  # f of the point the next step starts from
        self.best = first_values.clone()
        self.best_at_check = first_values.clone()
        self.halved_at_check = torch.zeros_like(first_values, dtype=torch.bool)
        self.rises = torch.zeros_like(first_values, dtype=torch.long)  # rises since the last checkpoint
        self.last_check = 0

    def observe(self, iteration: int, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(improved, halved), both (B,) bool, after f(x^(iteration)) = ``values``."""
        self.rises += values > self.last
        improved = values > self.best
        self.best = torch.where(improved, values, self.best)
        self.last = values
        halved = torch.zeros_like(improved)
        if iteration in self.points:
            few_rises = self.rises < self.rho * (iteration - self.last_check)
            stalled = ~self.halved_at_check & (self.best == self.best_at_check)
            halved = few_rises | stalled
            self.sizes = torch.where(halved, self.sizes / 2, self.sizes)
            self.last = torch.where(halved, self.best, self.last)
            self.halved_at_check, self.best_at_check = halved, self.best.clone()
            self.rises = torch.zeros_like(self.rises)
            self.last_check = iteration
        return improved, halved

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the images where ``rows`` (B,) bool is True (the others left the batch)."""
        for name in ("sizes", "last", "best", "best_at_check", "halved_at_check", "rises"):
            setattr(self, name, getattr(self, name)[rows])


def reference_start(
    norm: str, like: torch.Tensor, eps: float, generator: torch.Generator | None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The authors' random start: eps * t / ||t|| (on the sphere of radius eps), t uniform in [-1,1]^n under
    L∞ (so one pixel per image moves by exactly eps) and Gaussian under L2; t is zero outside ``mask``."""
    options = {"generator": generator, "device": like.device, "dtype": like.dtype}
    noise = 2 * torch.rand(like.shape, **options) - 1 if norm == "linf" else torch.randn(like.shape, **options)
    return eps * NORMS[norm].unit(masked(noise, mask))


class APGD(StepRule):
    """Auto-PGD (Croce & Hein, ICML 2020, Algorithm 1): a budget of ``steps`` iterations, no step size.

    From x^(0), the authors' random start in the ball, with eta = 2 eps per image and P the projection onto
    the eps-ball and [0,1] (direction: sign(g) under L∞, g / ||g||_2 under L2):

        z^(k+1) = P(x^(k) + eta direction(grad f(x^(k))))
        x^(k+1) = P(x^(k) + alpha (z^(k+1) - x^(k)) + (1 - alpha)(x^(k) - x^(k-1))),  alpha = 0.75 (1 for k = 0)

    At the checkpoints of ``checkpoints(steps)`` an image whose objective stalled has its eta halved and
    restarts from its best point (``StepSizeSchedule``). The best iterate x_max over x^(0)..x^(steps) is
    returned per image, over ``restarts`` random starts too. Per restart and image it costs ``steps``
    gradient passes (at x^(0)..x^(steps-1)) and one forward pass (f(x^(steps))), like PGD with keep_best.

    With ``early_stop=True`` and a ``done`` test given to ``run``,
    an image whose iterate reaches its goal after a step leaves the batch with that iterate, and is not
    attacked again by later restarts. Images in [0,1]; eps is a fraction of 1.
    """

    stops_with_best = True  # an image that reaches its goal leaves with that iterate, the others keep their best

    def __init__(self, eps: float, steps: int = 100, norm: str = "linf", restarts: int = 1, *, early_stop: bool = False) -> None:
        check_steps(steps)
        super().__init__(eps, INITIAL_STEP * eps, steps, norm, random_start=True, restarts=restarts, keep_best=True,
                         early_stop=early_stop)  # fmt: skip

    def __repr__(self) -> str:
        return (f"APGD(eps={self.eps:.6g} ({self.eps * 255:.4g}/255), steps={self.steps}, norm={self.norm!r}, "
                f"restarts={self.restarts}, rho={RHO}, alpha={MOMENTUM}, early_stop={self.early_stop})")  # fmt: skip

    def run(
        self,
        images: torch.Tensor,  # (B,C,H,W) in [0,1]
        objective: Callable[..., torch.Tensor],
        generator: torch.Generator | None = None,
        done: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Adversarial images (detached): per image the best iterate of every restart (see ``StepRule.run``)."""
        originals = checked_images(images)
        mask = checked_mask(mask, originals)
        stopping = self.early_stop and done is not None
        best, best_values = originals.clone(), None
        reached = torch.zeros(len(originals), dtype=torch.bool, device=originals.device)
        for _ in range(self.restarts):
            rows = (~reached).nonzero().flatten()
            if not len(rows):
                break
            adversarial, values, hit = self._attack(
                originals[rows], objective, generator, rows if stopping else None, done, None if mask is None else mask[rows]
            )
            if best_values is None:
                best_values = torch.full((len(originals),), -torch.inf, dtype=values.dtype, device=values.device)
            better = (values > best_values[rows]) | hit
            best[rows[better]], best_values[rows[better]] = adversarial[better], values[better]
            reached[rows] |= hit
        return best

    def _evaluate(
        self,
        objective: Callable[..., torch.Tensor],
        images: torch.Tensor,
        rows: torch.Tensor | None,
        iteration: int,
        gradient: bool,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """f (A,) at ``images`` (A,C,H,W) and, when ``gradient``, its gradient (zero outside ``mask``);
        ``rows``: their batch rows when stopping."""
        current = images.detach().requires_grad_(gradient)
        with torch.set_grad_enabled(gradient):
            values = objective(current) if rows is None else objective(current, rows)
            self._check_values(values, current)
            grad = torch.autograd.grad(values.sum(), current)[0] if gradient else None
        check_finite(values, grad, min(iteration + 1, self.steps), self.steps)
        return values.detach(), None if grad is None else masked(grad, mask)

    def _attack(
        self,
        originals: torch.Tensor,  # (A,C,H,W): the images still attacked
        objective: Callable[..., torch.Tensor],
        generator: torch.Generator | None,
        rows: torch.Tensor | None,  # (A,) their rows in the batch when stopping early, else None
        done: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
        mask: torch.Tensor | None = None,  # (A,...) where the images may change
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One run from a random start: (best iterates, their values, reached their goal) over the images given."""
        norm = NORMS[self.norm]
        count = len(originals)
        result = originals.clone()
        reached = torch.zeros(count, dtype=torch.bool, device=originals.device)
        left = torch.arange(count, device=originals.device)  # positions still iterated
        constrain = norm.constraint(originals, self.eps)
        current = constrain(originals + reference_start(self.norm, originals, self.eps, generator, mask))
        values, grad = self._evaluate(objective, current, rows, 0, gradient=True, mask=mask)
        result_values = torch.empty_like(values)
        best, best_values, best_grad, previous = current, values, grad, current
        schedule = StepSizeSchedule(self.steps, torch.full_like(values, INITIAL_STEP * self.eps), values)
        for k in range(1, self.steps + 1):
            alpha = 1.0 if k == 1 else MOMENTUM
            z = constrain(current + per_image(schedule.sizes, current).to(current.dtype) * norm.direction(grad))
            previous, current = current, constrain(current + alpha * (z - current) + (1 - alpha) * (current - previous))
            values, grad = self._evaluate(
                objective, current, None if rows is None else rows[left], k, gradient=k < self.steps,
                mask=None if mask is None else mask[left],
            )
            improved, halved = schedule.observe(k, values)
            best, best_values = torch.where(per_image(improved, best), current, best), torch.where(improved, values, best_values)
            if grad is not None:
                best_grad = torch.where(per_image(improved, grad), grad, best_grad)
                grad = torch.where(per_image(halved, grad), best_grad, grad)
            stepped, current = current, torch.where(per_image(halved, current), best, current)
            if rows is None or k == self.steps:
                continue
            with torch.no_grad():
                hit = done(stepped, rows[left])
            if hit.any():  # these images leave the batch with the iterate that reached the goal
                result[left[hit]], result_values[left[hit]], reached[left[hit]] = stepped[hit], values[hit], True
                kept = ~hit
                left = left[kept]
                current, previous, grad, best, best_values, best_grad = (
                    t[kept] for t in (current, previous, grad, best, best_values, best_grad)
                )
                schedule.keep(kept)
                constrain = norm.constraint(originals[left], self.eps)
                if not len(left):
                    break
        result[left], result_values[left] = best, best_values
        return result, result_values, reached
