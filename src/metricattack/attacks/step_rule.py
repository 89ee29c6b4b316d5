"""The step rules' loop: iterated gradient ascent within an eps-ball around images in [0,1].

It knows nothing about re-ID: ``run(images, objective)`` takes any objective returning one value per
image (B,) to maximise. The norm-specific parts (ascent direction, projection, random start) come from
``norms.NORMS``; the named rules (FGSM, I-FGSM, MI-FGSM, PGD, APGD) are in ``steps`` and ``apgd``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metricattack.attacks.norms import NORMS, TINY, masked, per_image
from metricattack.errors import InputError, NumericalError


def check_steps(steps: int) -> None:
    """InputError unless ``steps`` is an integer >= 1."""
    if steps < 1 or int(steps) != steps:
        raise InputError(f"--steps must be an integer >= 1, got {steps}")


def check_finite(values: torch.Tensor, grad: torch.Tensor | None, step: int, steps: int) -> None:
    """NumericalError when an objective value or gradient (None: not computed) of a step is NaN or infinite."""
    # One reduction over the gradient instead of an elementwise mask: a sum is non-finite when any term is.
    if not bool(torch.isfinite(values.sum() if grad is None else values.sum() + grad.sum())):
        raise NumericalError(
            f"non-finite attack loss or gradient (step {step} of {steps}: the model or the attack objective "
            "produced NaN or inf; check the model's weights and the distance)"
        )


DECAYS = ("constant", "linear")


def checked_images(images: torch.Tensor) -> torch.Tensor:
    """The images, detached, after checking they are in [0,1] (ValueError: a programming error)."""
    originals = images.detach()
    if originals.numel() and (originals.min() < 0 or originals.max() > 1):
        raise ValueError("images must be in [0, 1]")
    return originals


def checked_mask(mask: torch.Tensor | None, variable: torch.Tensor) -> torch.Tensor | None:
    """``mask`` as 0/1 values of the variable's dtype, after checking it has one row per variable row and
    broadcasts to it (ValueError: a programming error). None stays None: the whole variable may change."""
    if mask is None:
        return None
    if mask.dim() != variable.dim() or mask.shape[0] != variable.shape[0]:
        raise ValueError(f"mask {tuple(mask.shape)} must have one row per variable row {tuple(variable.shape)}")
    try:
        torch.broadcast_shapes(mask.shape, variable.shape)
    except RuntimeError as error:
        raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to the variable {tuple(variable.shape)}") from error
    return (mask != 0).to(device=variable.device, dtype=variable.dtype)


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
    A non-finite objective value or gradient stops the attack with NumericalError.

    ``mask`` (given to ``run``) restricts the change to where it is 1: the gradient and the random start are
    masked, so entries outside it keep their original values bit for bit (L∞ and L2 alike).

    ``restarts`` runs the loop that many times (from fresh random starts when ``random_start``).
    ``keep_best`` returns, per image, the iterate with the highest objective seen over every step and
    restart (x_0 .. x_steps) instead of the last one, so more steps or restarts never weaken the attack;
    it costs one extra forward pass per restart.
    """

    stops_with_best = False  # whether ``run`` keeps the best iterate of an image that stops early (APGD's does)

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
        check_steps(steps)
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
        if early_stop and keep_best and not self.stops_with_best:
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
        images: torch.Tensor,  # (B,...) in [0,1]: the optimised variable, images by default
        objective: Callable[..., torch.Tensor],
        generator: torch.Generator | None = None,
        done: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,  # broadcastable to images, one row per row: where they may change
    ) -> torch.Tensor:
        """Adversarial images (detached) maximising ``objective``, which maps (B,...) to per-row values (B,).

        Gradients are taken with ``torch.autograd.grad`` with respect to the images only, so the
        parameters of a model inside ``objective`` get no ``.grad``; ``generator`` drives the random start.
        With ``early_stop`` and ``done``, both are called on the images still iterated as
        ``f(images, rows)``, ``rows`` (A,) their positions in the batch; ``done`` returns (A,) bool.
        """
        originals = checked_images(images)
        mask = checked_mask(mask, originals)
        best = best_values = None
        for _ in range(self.restarts):
            adversarial, values = self._ascend(originals, objective, generator, done if self.early_stop else None, mask)
            if self.keep_best:
                best, best_values = keep_better(best, best_values, adversarial, values)
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
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One run of the loop: the adversarial images and, with ``keep_best``, the best iterate's values (B,)."""
        norm = NORMS[self.norm]
        if self.random_start:
            adversarial = (originals + norm.random_start(originals, self.eps, generator, mask)).clamp(0, 1)
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
                check_finite(values, grad, step, self.steps)
                grad = masked(grad, mask if mask is None or rows is None else mask[rows])
                if self.keep_best:
                    best, best_values = keep_better(best, best_values, current.detach(), values.detach())
                if self.momentum is not None:
                    normalised = grad / per_image(grad.abs().flatten(1).mean(dim=1).clamp(min=TINY), grad)
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
        return keep_better(best, best_values, adversarial, values.detach())


def keep_better(
    best: torch.Tensor | None, best_values: torch.Tensor | None, candidate: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the candidate where its objective value is higher than the best so far."""
    if best is None:
        return candidate, values
    better = values > best_values
    return torch.where(per_image(better, best), candidate, best), torch.where(better, values, best_values)
