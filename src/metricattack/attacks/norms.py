"""The geometry of a threat model: the steepest-ascent direction, the projection onto the eps-ball and
a random start in it, under L∞ and L2. eps is a fraction of 1; the optimised variable is (B,...), one
ball per row (an image, a frame, a texture).

A mask (broadcastable to the variable, 1 where it may change, 0 where not) restricts the perturbation
to part of each row: the step rules mask the gradient and the random start, so every step and
projection leaves the masked-out entries exactly as they were."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

TINY = 1e-12  # floor for norms we divide by (the paper's code uses the same for MI-FGSM)


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-image values (B,) to broadcast over ``like`` (B,C,H,W)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def masked(tensor: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``tensor`` with the entries outside ``mask`` set to zero (``mask`` None: unchanged, the same object)."""
    return tensor if mask is None else tensor * mask


def l2_norms(tensor: torch.Tensor) -> torch.Tensor:
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

    def random_start(
        self, like: torch.Tensor, eps: float, generator: torch.Generator | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A random perturbation inside the eps-ball, shaped like ``like``, zero outside ``mask``."""
        ...

    def unit(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` rescaled per image to norm 1 (a zero image stays zero)."""
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

    def random_start(
        self, like: torch.Tensor, eps: float, generator: torch.Generator | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        noise = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return masked((2 * noise - 1) * eps, mask)

    def unit(self, delta: torch.Tensor) -> torch.Tensor:
        return delta / per_image(delta.flatten(1).abs().amax(dim=1).clamp(min=TINY), delta)


class L2Norm:
    """L2: step along grad / ||grad||_2 per image; rescale longer changes to length eps;
    start in a uniformly random direction at a radius uniform in [0, eps]."""

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return self.unit(grad)

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        factors = (eps / l2_norms(delta).clamp(min=TINY)).clamp(max=1.0)
        return delta * per_image(factors, delta)

    def constraint(self, originals: torch.Tensor, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
        # Clamping to [0,1] after the ball only moves pixels toward the originals: still inside the ball.
        return lambda stepped: (originals + self.project(stepped - originals, eps)).clamp(0, 1)

    def random_start(
        self, like: torch.Tensor, eps: float, generator: torch.Generator | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        gaussian = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        radius = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype) * eps
        return self.direction(masked(gaussian, mask)) * per_image(radius, like)

    def unit(self, delta: torch.Tensor) -> torch.Tensor:
        return delta / per_image(l2_norms(delta).clamp(min=TINY), delta)


NORMS: dict[str, Norm] = {"linf": LinfNorm(), "l2": L2Norm()}
