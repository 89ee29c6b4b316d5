"""Step rules: how an objective is maximised within an eps-ball around images in [0,1].

They know nothing about re-ID: ``run(images, objective)`` takes any per-image objective (B,) to
maximise. The norm-specific parts (ascent direction, projection, random start) are small strategy
objects, so FGSM, I-FGSM, MI-FGSM and PGD are one loop with different settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from metricattack.errors import InputError


def pixels_to_fraction(value: float, option: str) -> float:
    """Convert a size in pixel units out of 255 to a fraction of 1, checking it is in (0, 255]."""
    if not 0 < value <= 255:
        raise InputError(f"{option} must be in (0, 255] pixel units (out of 255), got {value:g}")
    return value / 255


def default_iterations(eps_pixels: float) -> int:
    """Kurakin et al.'s rule, used by the paper's code: int(min(eps + 4, 1.25 eps)), at least 1."""
    return max(1, int(min(eps_pixels + 4, 1.25 * eps_pixels)))


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """Reshape (B,) to broadcast over (B,C,H,W)."""
    return values.view(-1, *([1] * 3))


class LinfNorm:
    """L-infinity: step along the gradient's sign; clip each pixel's change to [-eps, eps]."""

    name = "linf"

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta.clamp(-eps, eps)

    def random_start(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * noise - 1) * eps


class L2Norm:
    """L2: step along the gradient scaled to unit L2 norm per image; rescale changes longer than eps."""

    name = "l2"

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / _per_image(grad.flatten(1).norm(dim=1).clamp(min=1e-12))

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        norms = delta.flatten(1).norm(dim=1)
        return delta * _per_image((eps / norms.clamp(min=1e-12)).clamp(max=1.0))

    def random_start(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        direction = self.direction(torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype))
        radius = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype) * eps
        return direction * _per_image(radius)


NORMS = {"linf": LinfNorm(), "l2": L2Norm()}


class StepRule:
    """Iterated gradient ascent with projection onto the eps-ball and [0,1] after every step.

    With ``momentum`` m (MI-FGSM, Dong et al.): g_t = m g_{t-1} + grad_t / mean(|grad_t|), and the step
    follows g_t instead of grad_t. ``random_start`` begins from a uniform point of the ball (PGD).
    eps and step_size are fractions of 1 (pixels / 255).
    """

    name = "steprule"

    def __init__(
        self,
        eps: float,
        step_size: float,
        steps: int,
        norm: str = "linf",
        random_start: bool = False,
        momentum: float | None = None,
    ) -> None:
        if not 0 < eps <= 1:
            raise InputError(f"--eps must be in (0, 255] pixel units (out of 255), got {eps * 255:g}")
        if steps < 1:
            raise InputError(f"--steps must be at least 1, got {steps}")
        if not step_size > 0:
            raise InputError(f"--step-size must be positive, got {step_size * 255:g}")
        if norm not in NORMS:
            raise InputError(f"--norm: unknown norm {norm!r} (expected one of {', '.join(NORMS)})")
        self.eps = eps
        self.step_size = step_size
        self.steps = steps
        self.norm = norm
        self.random_start = random_start
        self.momentum = momentum

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eps={self.eps:.5f} ({self.eps * 255:g}/255), step_size={self.step_size:.5f} "
            f"({self.step_size * 255:g}/255), steps={self.steps}, norm={self.norm!r}, "
            f"random_start={self.random_start}, momentum={self.momentum})"
        )

    def run(
        self,
        images: torch.Tensor,
        objective: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Adversarial images maximising ``objective`` (per-image values (B,)); detached."""
        norm = NORMS[self.norm]
        originals = images.detach()
        delta = norm.random_start(originals, self.eps, generator) if self.random_start else torch.zeros_like(originals)
        adversarial = (originals + delta).clamp(0, 1)
        accumulated = None
        for _ in range(self.steps):
            adversarial.requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(adversarial).sum(), adversarial)
            if self.momentum is not None:
                grad = grad / _per_image(grad.abs().flatten(1).mean(dim=1).clamp(min=1e-12))
                accumulated = grad if accumulated is None else self.momentum * accumulated + grad
                grad = accumulated
            stepped = adversarial.detach() + self.step_size * norm.direction(grad)
            adversarial = (originals + norm.project(stepped - originals, self.eps)).clamp(0, 1)
        return adversarial.detach()


class FGSM(StepRule):
    """Fast gradient sign method (Goodfellow et al.): one step of size eps."""

    name = "fgsm"

    def __init__(self, eps: float, norm: str = "linf") -> None:
        super().__init__(eps, step_size=eps, steps=1, norm=norm)


class IFGSM(StepRule):
    """Iterative FGSM (Kurakin et al.): steps of 1/255 (L2: 2.5 eps / steps), default_iterations(eps) of them."""

    name = "ifgsm"

    def __init__(self, eps: float, step_size: float | None = None, steps: int | None = None, norm: str = "linf") -> None:
        steps = steps if steps is not None else default_iterations(eps * 255)
        if step_size is None:
            step_size = 1 / 255 if norm == "linf" else 2.5 * eps / max(steps, 1)
        super().__init__(eps, step_size, steps, norm)


class MIFGSM(StepRule):
    """Momentum iterative FGSM (Dong et al.): I-FGSM following the accumulated normalised gradient."""

    name = "mifgsm"

    def __init__(
        self, eps: float, step_size: float | None = None, steps: int | None = None, momentum: float = 1.0, norm: str = "linf"
    ) -> None:
        steps = steps if steps is not None else default_iterations(eps * 255)
        if step_size is None:
            step_size = 1 / 255 if norm == "linf" else 2.5 * eps / max(steps, 1)
        super().__init__(eps, step_size, steps, norm, momentum=momentum)


class PGD(StepRule):
    """Projected gradient descent (Madry et al.): random start, steps of 2.5 eps / steps."""

    name = "pgd"

    def __init__(
        self, eps: float, step_size: float | None = None, steps: int = 10, norm: str = "linf", random_start: bool = True
    ) -> None:
        super().__init__(eps, step_size if step_size is not None else 2.5 * eps / max(steps, 1), steps, norm, random_start)


ATTACKS: dict[str, type[StepRule]] = {"fgsm": FGSM, "ifgsm": IFGSM, "mifgsm": MIFGSM, "pgd": PGD}


def build_step_rule(name: str, eps: float, **options) -> StepRule:
    """A step rule by name; ``steps`` / ``step_size`` do not apply to FGSM (one step of eps)."""
    if name not in ATTACKS:
        raise InputError(f"--attack: unknown attack {name!r} (expected one of {', '.join(ATTACKS)})")
    if name == "fgsm":
        extra = sorted(set(options) - {"norm"})
        if extra:
            raise InputError(f"--attack fgsm takes one step of size eps: drop {', '.join('--' + o.replace('_', '-') for o in extra)}")
    return ATTACKS[name](eps, **options)
