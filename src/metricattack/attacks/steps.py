"""Step rules: how an objective is maximised within an eps-ball around images in [0,1].

They know nothing about re-ID: ``run(images, objective)`` takes any objective returning one value
per image (B,) to maximise. The norm-specific parts (ascent direction, projection, random start) are
small strategy objects in ``NORMS``, so FGSM, I-FGSM, MI-FGSM and PGD are one loop with different
settings. eps and step sizes are fractions of 1; ``pixels_to_fraction`` converts the pixel units
(out of 255) users type, once, at the boundary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol

import torch

from metricattack.errors import InputError

_TINY = 1e-12  # floor for norms we divide by (the paper's code uses the same for MI-FGSM)


def pixels_to_fraction(value: float, option: str) -> float:
    """Convert a size in pixel units out of 255 to a fraction of 1, checking it is in (0, 255]."""
    if not 0 < value <= 255:
        raise InputError(f"{option} must be in (0, 255] pixel units (out of 255), got {value:g}")
    return value / 255


def default_iterations(eps_pixels: float) -> int:
    """Kurakin et al.'s iteration count, as in the paper's code: int(min(eps + 4, 1.25 eps)), at least 1.

    ``eps_pixels`` is in pixel units out of 255; a tiny tolerance absorbs the float error of
    eps / 255 * 255 so that, e.g., 8 pixels gives 10 and not 9.
    """
    return max(1, int(min(eps_pixels + 4, 1.25 * eps_pixels) + 1e-9))


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-image values (B,) to broadcast over ``like`` (B,C,H,W)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _l2_norms(tensor: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norms (B,)."""
    return tensor.flatten(1).norm(dim=1)


class Norm(Protocol):
    """The geometry of a threat model: how to step, project and start at random."""

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The steepest-ascent direction of unit size for a gradient (B,C,H,W)."""
        ...

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        """The closest perturbation to ``delta`` inside the eps-ball."""
        ...

    def constraint(self, originals: torch.Tensor, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """A map from stepped images to images inside the eps-ball around ``originals`` and [0,1]."""
        ...

    def random_start(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        """A random perturbation inside the eps-ball, shaped like ``like``."""
        ...


class LinfNorm:
    """L∞: step along the gradient's sign; clip each pixel's change to [-eps, eps]; start uniform in the cube."""

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta.clamp(-eps, eps)

    def constraint(self, originals: torch.Tensor, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
        # The ball and [0,1] are both boxes: one clamp between precomputed bounds projects onto both.
        lower, upper = (originals - eps).clamp(min=0), (originals + eps).clamp(max=1)
        return lambda stepped: torch.clamp(stepped, lower, upper)

    def random_start(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * noise - 1) * eps


class L2Norm:
    """L2: step along grad / ||grad||_2 per image; rescale longer changes to length eps;
    start in a uniformly random direction at a radius uniform in [0, eps]."""

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / _per_image(_l2_norms(grad).clamp(min=_TINY), grad)

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        factors = (eps / _l2_norms(delta).clamp(min=_TINY)).clamp(max=1.0)
        return delta * _per_image(factors, delta)

    def constraint(self, originals: torch.Tensor, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
        # Clamping to [0,1] after the ball only moves pixels toward the originals: still inside the ball.
        return lambda stepped: (originals + self.project(stepped - originals, eps)).clamp(0, 1)

    def random_start(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        gaussian = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        radius = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype) * eps
        return self.direction(gaussian) * _per_image(radius, like)


NORMS: dict[str, Norm] = {"linf": LinfNorm(), "l2": L2Norm()}


def _check_steps(steps: int) -> None:
    if steps < 1 or int(steps) != steps:
        raise InputError(f"--steps must be an integer >= 1, got {steps}")


def _check_finite(values: torch.Tensor, grad: torch.Tensor, step: int, steps: int) -> None:
    # One reduction over the gradient instead of an elementwise mask: a sum is non-finite when any term is.
    if not bool(torch.isfinite(values.sum() + grad.sum())):
        raise InputError(
            f"non-finite attack loss or gradient (step {step} of {steps}: the model or the attack objective "
            "produced NaN or inf; check the model's weights and the distance)"
        )


DECAYS = ("constant", "linear")
SCHEDULES = ("paper", "fast")
FAST_STEPS = 5  # the fast schedule's default: steps of eps, 4/5 eps, ..., 1/5 eps


def _schedule(schedule: str, eps: float, step_size: float | None, steps: int | None) -> dict:
    """StepRule options of a named I-FGSM / MI-FGSM schedule; an explicit step size or count wins.

    paper: Bai et al.'s loop, int(min(eps + 4, 1.25 eps)) constant steps of 1/255 (eps in pixels), every
    image to the end. fast: FAST_STEPS steps decaying linearly from eps to eps / steps, each image
    dropped once its goal (given by the caller) is reached.
    """
    if schedule == "paper":
        return {"step_size": 1 / 255 if step_size is None else step_size,
                "steps": default_iterations(eps * 255) if steps is None else steps}
    if schedule == "fast":
        return {"step_size": eps if step_size is None else step_size, "steps": FAST_STEPS if steps is None else steps,
                "decay": "linear", "early_stop": True}
    raise InputError(f"--schedule: unknown schedule {schedule!r} (expected one of {', '.join(SCHEDULES)})")


class StepRule:
    """Iterated gradient ascent, projected onto the eps-ball around the originals and onto [0,1] after every step.

    x_0 = x (or x + a random point of the ball), then for t = 1..steps:
        g_t = grad_x sum_i objective(x_{t-1})_i            (each image's own gradient)
        with momentum m (MI-FGSM): g_t = m g_{t-1} + g_t / mean(|g_t|)   (per image)
        x_t = clip_[0,1](x + project_eps(x_{t-1} + step_size * direction(g_t) - x))
    where direction is sign(g) under L∞ and g / ||g||_2 under L2. eps and step_size are fractions of 1.

    ``decay="linear"`` shrinks the step linearly: step t (1-based) is step_size * (steps - t + 1) / steps.
    ``early_stop`` with a ``done`` test given to ``run``: after each step, images whose goal is reached
    are frozen and leave the batch, so later steps cost only the images still short of it.
    A non-finite objective value or gradient stops the attack with InputError.

    ``restarts`` runs the loop that many times (from fresh random starts when ``random_start``).
    ``keep_best`` returns, per image, the iterate with the highest objective seen over every step and
    restart (x_0 .. x_steps) instead of the last one, so more steps or restarts never weaken the attack;
    it costs one extra forward pass per restart.
    """

    def __init__(
        self,
        eps: float,
        step_size: float,
        steps: int,
        norm: str = "linf",
        random_start: bool = False,
        momentum: float | None = None,
        restarts: int = 1,
        keep_best: bool = False,
        decay: str = "constant",
        early_stop: bool = False,
    ) -> None:
        if not 0 < eps <= 1:
            raise InputError(f"eps must be in (0, 1] as a fraction of 1 (pixels / 255), got {eps:g}")
        _check_steps(steps)
        if not step_size > 0:
            raise InputError(f"--step-size must be > 0, got {step_size:g}")
        if norm not in NORMS:
            raise InputError(f"--norm: unknown norm {norm!r} (expected one of {', '.join(NORMS)})")
        if momentum is not None and not momentum >= 0:
            raise InputError(f"--momentum must be >= 0, got {momentum:g}")
        if restarts < 1 or int(restarts) != restarts:
            raise InputError(f"--restarts must be an integer >= 1, got {restarts}")
        if decay not in DECAYS:
            raise InputError(f"unknown step decay {decay!r} (expected one of {', '.join(DECAYS)})")
        if early_stop and keep_best:
            raise ValueError("early_stop and keep_best do not combine: a frozen image keeps the iterate that reached its goal")
        self.eps = eps
        self.step_size = step_size
        self.steps = int(steps)
        self.norm = norm
        self.random_start = random_start
        self.momentum = momentum
        self.restarts = int(restarts)
        self.keep_best = keep_best
        self.decay = decay
        self.early_stop = early_stop

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eps={self.eps:.6g} ({self.eps * 255:.4g}/255), "
            f"step_size={self.step_size:.6g} ({self.step_size * 255:.4g}/255), steps={self.steps}, "
            f"norm={self.norm!r}, random_start={self.random_start}, momentum={self.momentum}, "
            f"restarts={self.restarts}, keep_best={self.keep_best}, decay={self.decay!r}, early_stop={self.early_stop})"
        )

    def step_sizes(self) -> list[float]:
        """The size of each step, fractions of 1."""
        if self.decay == "linear":
            return [self.step_size * (self.steps - t) / self.steps for t in range(self.steps)]
        return [self.step_size] * self.steps

    def run(
        self,
        images: torch.Tensor,  # (B,C,H,W) in [0,1]
        objective: Callable[..., torch.Tensor],
        generator: torch.Generator | None = None,
        done: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Adversarial images (detached) maximising ``objective``, which maps (B,C,H,W) to per-image values (B,).

        Gradients are taken with ``torch.autograd.grad`` with respect to the images only, so the
        parameters of a model inside ``objective`` get no ``.grad``; ``generator`` drives the random start.
        With ``early_stop`` and ``done``, both are called on the images still iterated as
        ``f(images, rows)``, ``rows`` (A,) their positions in the batch; ``done`` returns (A,) bool.
        """
        originals = images.detach()
        if originals.numel() and (originals.min() < 0 or originals.max() > 1):
            raise ValueError("images must be in [0, 1]")
        best = best_values = None
        for _ in range(self.restarts):
            adversarial, values = self._ascend(originals, objective, generator, done if self.early_stop else None)
            if self.keep_best:
                best, best_values = _keep_better(best, best_values, adversarial, values)
            else:
                best = adversarial
        return best

    def _check_values(self, values: torch.Tensor, originals: torch.Tensor) -> None:
        if values.shape != originals.shape[:1]:
            raise ValueError(f"objective must return one value per image {tuple(originals.shape[:1])}, got {tuple(values.shape)}")

    def _ascend(
        self,
        originals: torch.Tensor,
        objective: Callable[..., torch.Tensor],
        generator: torch.Generator | None,
        done: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One run of the loop: the adversarial images and, with ``keep_best``, the best iterate's values (B,)."""
        norm = NORMS[self.norm]
        if self.random_start:
            adversarial = (originals + norm.random_start(originals, self.eps, generator)).clamp(0, 1)
        else:
            adversarial = originals.clone()
        constrain = norm.constraint(originals, self.eps)
        accumulated = None  # MI-FGSM's running gradient
        rows = None if done is None else torch.arange(len(originals), device=originals.device)  # images still iterated
        best = best_values = None
        sizes = self.step_sizes()
        with torch.enable_grad():
            for step, size in enumerate(sizes, 1):
                current = (adversarial if rows is None else adversarial[rows]).detach().requires_grad_(True)
                values = objective(current) if rows is None else objective(current, rows)
                self._check_values(values, current)
                (grad,) = torch.autograd.grad(values.sum(), current)
                _check_finite(values, grad, step, self.steps)
                if self.keep_best:
                    best, best_values = _keep_better(best, best_values, current.detach(), values.detach())
                if self.momentum is not None:
                    normalised = grad / _per_image(grad.abs().flatten(1).mean(dim=1).clamp(min=_TINY), grad)
                    if rows is None:
                        accumulated = normalised if accumulated is None else self.momentum * accumulated + normalised
                        grad = accumulated
                    else:
                        if accumulated is None:
                            accumulated = torch.zeros_like(originals)
                        grad = accumulated[rows] = self.momentum * accumulated[rows] + normalised
                stepped = torch.add(current.detach(), norm.direction(grad), alpha=size)
                if rows is None:
                    adversarial = constrain(stepped)
                    continue
                adversarial = adversarial.detach().clone()
                adversarial[rows] = stepped
                adversarial = constrain(adversarial)  # frozen images are inside already: unchanged
                if step < len(sizes):
                    with torch.no_grad():
                        rows = rows[~done(adversarial[rows], rows)]
                    if not len(rows):
                        break
        adversarial = adversarial.detach()
        if not self.keep_best:
            return adversarial, None
        with torch.no_grad():
            values = objective(adversarial)
        self._check_values(values, originals)
        return _keep_better(best, best_values, adversarial, values.detach())


def _keep_better(
    best: torch.Tensor | None, best_values: torch.Tensor | None, candidate: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the candidate where its objective value is higher than the best so far."""
    if best is None:
        return candidate, values
    better = values > best_values
    return torch.where(_per_image(better, best), candidate, best), torch.where(better, values, best_values)


class FGSM(StepRule):
    """Fast gradient (sign) method (Goodfellow et al., 2015): one step of size eps from the clean images.

    Images in [0,1]; eps is a fraction of 1. Under L2 the step is eps * grad / ||grad||_2.
    """

    def __init__(self, eps: float, norm: str = "linf") -> None:
        super().__init__(eps, step_size=eps, steps=1, norm=norm)


class IFGSM(StepRule):
    """Iterative FGSM (Kurakin et al., 2017). ``schedule="paper"`` (Bai et al.): steps of 1/255,
    default_iterations(eps) of them; ``"fast"``: FAST_STEPS steps decaying from eps, with early stopping.

    Images in [0,1]; eps and step_size are fractions of 1.
    """

    def __init__(
        self, eps: float, step_size: float | None = None, steps: int | None = None, norm: str = "linf", schedule: str = "paper"
    ) -> None:
        super().__init__(eps, norm=norm, **_schedule(schedule, eps, step_size, steps))


class MIFGSM(StepRule):
    """Momentum iterative FGSM (Dong et al., 2018): I-FGSM following g_t = m g_{t-1} + grad_t / mean(|grad_t|).

    Images in [0,1]; eps and step_size are fractions of 1; momentum m = 1 as in Bai et al.; schedules as IFGSM's.
    """

    def __init__(
        self,
        eps: float,
        step_size: float | None = None,
        steps: int | None = None,
        momentum: float = 1.0,
        norm: str = "linf",
        schedule: str = "paper",
    ) -> None:
        super().__init__(eps, norm=norm, momentum=momentum, **_schedule(schedule, eps, step_size, steps))


class PGD(StepRule):
    """Projected gradient descent (Madry et al., 2018): random start, steps of 2.5 eps / steps by default.

    Images in [0,1]; eps and step_size are fractions of 1. ``restarts`` random starts; per image the
    best iterate over all steps and restarts is kept (``keep_best``), as robustness evaluations do.
    """

    def __init__(
        self,
        eps: float,
        step_size: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        restarts: int = 1,
        keep_best: bool = True,
    ) -> None:
        _check_steps(steps)
        step_size = 2.5 * eps / steps if step_size is None else step_size
        super().__init__(eps, step_size, steps, norm, random_start, restarts=restarts, keep_best=keep_best)


ATTACKS: dict[str, type[StepRule]] = {"fgsm": FGSM, "ifgsm": IFGSM, "mifgsm": MIFGSM, "pgd": PGD}


def _flags(names: list[str]) -> str:
    """Option names as command-line flags: ["step_size"] -> "--step-size"."""
    return ", ".join("--" + name.replace("_", "-") for name in names)


def build_step_rule(name: str, eps: float, **options) -> StepRule:
    """The step rule registered as ``name`` with eps (a fraction of 1) and its own keyword options."""
    if name not in ATTACKS:
        raise InputError(f"--attack: unknown attack {name!r} (expected one of {', '.join(ATTACKS)})")
    accepted = [p for p in inspect.signature(ATTACKS[name]).parameters if p != "eps"]
    extra = sorted(set(options) - set(accepted))
    if extra:
        raise InputError(f"--attack {name} does not take {_flags(extra)} (it takes {_flags(accepted)})")
    return ATTACKS[name](eps, **options)
