"""Universal adversarial perturbations (UAP): one image-agnostic perturbation added to every attacked image.

The perturbation delta (3,H,W) is learned on a training set by stochastic projected gradient ascent
(Shafahi et al., "Universal Adversarial Training", AAAI 2020; for retrieval, Li et al., "Universal
Perturbation Attack Against Image Retrieval", ICCV 2019):

    for each epoch, for each shuffled batch B of training images x_i:
        delta <- project_eps(delta + step_size * direction(grad_delta sum_{i in B} L_i(clip_[0,1](x_i + delta))))

with direction / project from the norm (sign and clipping under L∞). ``UniversalPerturbation`` knows
nothing about re-ID; ``experiment.universal.UniversalAttack`` (``--attack uap``) makes the metric objective (push every
training image away from the clean features of its identity), caches the perturbation per epoch so an
interrupted run resumes, and adds it to the test images of the attacked side(s).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from metricattack.attacks.steps import NORMS
from metricattack.errors import InputError

DEFAULT_EPOCHS = 3


class UniversalPerturbation:
    """Learn one perturbation (3,H,W) within the eps-ball that maximises a per-image objective on average.

    Images in [0,1]; eps and step_size are fractions of 1 (step 1/255 by default, so an L∞ perturbation
    stays on the 8-bit grid and saves losslessly as a PNG).
    """

    def __init__(self, eps: float, step_size: float = 1 / 255, epochs: int = DEFAULT_EPOCHS, norm: str = "linf",
                 batch_size: int = 64) -> None:  # fmt: skip
        if not 0 < eps <= 1:
            raise InputError(f"eps must be in (0, 1] as a fraction of 1 (pixels / 255), got {eps:g}")
        if epochs < 1 or int(epochs) != epochs:
            raise InputError(f"--steps (UAP epochs over the training split) must be an integer >= 1, got {epochs}")
        if norm not in NORMS:
            raise InputError(f"--norm: unknown norm {norm!r} (expected one of {', '.join(NORMS)})")
        self.eps = eps
        self.step_size = step_size
        self.epochs = int(epochs)
        self.norm = norm
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return (f"UniversalPerturbation(eps={self.eps:.6g} ({self.eps * 255:.4g}/255), step_size={self.step_size:.6g}, "
                f"epochs={self.epochs}, norm={self.norm!r}, batch_size={self.batch_size})")  # fmt: skip

    def fit(
        self,
        images: torch.Tensor,  # (N,3,H,W) uint8 or float in [0,1], on any device
        objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],  # (adversarial (B,3,H,W), indices (B,)) -> (B,)
        seed: int = 0,
        device: torch.device | None = None,
        delta: torch.Tensor | None = None,
        start_epoch: int = 0,
        on_epoch: Callable[[int, torch.Tensor], None] | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """The perturbation (3,H,W) after ``epochs`` epochs, continuing from ``delta`` after ``start_epoch``.

        Each epoch's batch order comes from its own generator (seed, epoch), so a resumed fit ends where an
        uninterrupted one does; ``on_epoch(epoch, delta)`` is called after each epoch (to save progress).
        """
        device = device or images.device
        norm = NORMS[self.norm]
        delta = torch.zeros(images.shape[1:], device=device) if delta is None else delta.to(device).clone()
        for epoch in range(start_epoch, self.epochs):
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            batches = range(0, len(images), self.batch_size)
            for start in tqdm(batches, desc=f"UAP epoch {epoch + 1}/{self.epochs}", disable=not progress, leave=False):
                indices = order[start : start + self.batch_size]
                batch = images[indices].to(device)
                batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
                with torch.enable_grad():
                    delta.requires_grad_(True)
                    values = objective(apply_perturbation(batch, delta), indices)
                    (grad,) = torch.autograd.grad(values.sum(), delta)
                stepped = delta.detach()[None] + self.step_size * norm.direction(grad[None])  # (1,3,H,W): norms are per image
                delta = norm.project(stepped, self.eps)[0]
            if on_epoch is not None:
                on_epoch(epoch + 1, delta)
        return delta.detach()


def apply_perturbation(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Images (B,3,H,W) in [0,1] plus one perturbation (3,H,W), clipped to [0,1]."""
    if images.shape[1:] != delta.shape:
        raise InputError(f"a universal perturbation of size {tuple(delta.shape)} does not fit images of size "
                         f"{tuple(images.shape[1:])} (expected images of the size it was learned on)")  # fmt: skip
    return (images + delta).clamp(0, 1)
