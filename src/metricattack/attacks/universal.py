"""Universal adversarial perturbations (UAP): one image-agnostic perturbation added to every attacked image.

The perturbation delta (3,H,W) is learned on a training set by stochastic projected gradient ascent
(Shafahi et al., "Universal Adversarial Training", AAAI 2020; for retrieval, Li et al., "Universal
Perturbation Attack Against Image Retrieval", ICCV 2019):

    for each epoch, for each shuffled batch B of training images x_i:
        delta <- project_eps(delta + step_size * direction(grad_delta sum_{i in B} L_i(clip_[0,1](x_i + delta))))

with direction / project from the norm (sign and clipping under L∞). ``UniversalPerturbation`` knows
nothing about re-ID; ``UniversalAttack`` (``--attack uap``) makes the metric objective (push every
training image away from the clean features of its identity), caches the perturbation per epoch so an
interrupted run resumes, and adds it to the test images of the attacked side(s).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from metricattack.atomic import atomic_write
from metricattack.attacks.attack import eval_mode
from metricattack.attacks.chunks import AttackedSide
from metricattack.attacks.campaign import AttackOutcome, AttackSetting, Campaign, NamedModel, quantize, register_campaign_attack
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.steps import NORMS, pixels_to_fraction
from metricattack.data.synthetic import cache_root
from metricattack.errors import InputError
from metricattack.features import read_images

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


@dataclass
class UniversalOutcome(AttackOutcome):
    """An attack outcome that also carries the universal perturbation (3,H,W), to be shown in the report."""

    perturbation: torch.Tensor | None = None


def _cache_key(campaign: Campaign, setting: AttackSetting, sources: list[NamedModel], shape: tuple) -> str:
    """A digest of everything the learned perturbation depends on: setting, seed, weights, training images."""
    digest = hashlib.sha256(f"{setting.key}|{campaign.seed}|{shape}|{campaign.batch_size}".encode())
    for sample in campaign.data.train:
        digest.update(f"{sample.path}|{sample.pid}".encode())
    for named in sources:
        for name, tensor in sorted(named.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


@register_campaign_attack("uap")
class UniversalAttack:
    """``--attack uap``: a universal perturbation learned on the training split with the source model(s),
    added to every attacked test image (``--steps``: epochs, default 3; ``--step-size`` default 1)."""

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options a universal perturbation does not take."""
        if setting.goal != "untargeted":
            raise InputError("--attack uap is non-targeted only (expected --goal untargeted)")
        if setting.restarts is not None or setting.target_pid is not None:
            raise InputError("--attack uap does not take --restarts or --target-pid")
        self.perturbation(setting)

    def perturbation(self, setting: AttackSetting) -> UniversalPerturbation:
        """The learner with the setting's sizes converted from pixels."""
        step_size = pixels_to_fraction(setting.step_size, "--step-size") if setting.step_size is not None else 1 / 255
        epochs = DEFAULT_EPOCHS if setting.steps is None else setting.steps
        return UniversalPerturbation(pixels_to_fraction(setting.eps, "--eps"), step_size, epochs, setting.norm)

    def __call__(self, campaign: Campaign, setting: AttackSetting, sources: list[NamedModel]) -> UniversalOutcome:
        """Learn (or resume, or reuse) the perturbation, then add it to the attacked side(s)."""
        if not campaign.data.train:
            raise InputError("--attack uap learns on the training split, which is empty (expected training images)")
        learner = self.perturbation(setting)
        learner.batch_size = campaign.batch_size
        started = time.perf_counter()
        shape = tuple(campaign.query.shape[-2:])
        train_images = read_images(campaign.data.train, campaign.batch_size, shape, progress=campaign.progress)
        train_pids = torch.tensor([s.pid for s in campaign.data.train], device=campaign.device)
        references = [campaign.features(named.model, train_images) for named in sources]  # (N,D_m) per model
        losses = [NonTargetedMetricLoss(named.model.spec.metric, named.model.spec.normalize) for named in sources]

        def objective(adversarial: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:  # (B,)
            own_mask = train_pids[indices.to(campaign.device)][:, None] == train_pids[None, :]
            values = [loss(named.model(adversarial), ref, own_mask) for named, loss, ref in zip(sources, losses, references)]
            return torch.stack(values).mean(dim=0)

        path = cache_root() / "uap" / f"{_cache_key(campaign, setting, sources, shape)}.safetensors"
        delta, start_epoch = None, 0
        if path.is_file():
            saved = load_file(str(path))
            delta, start_epoch = saved["delta"], int(saved["epoch"])

        def save(epoch: int, current: torch.Tensor) -> None:
            state = {"delta": current.cpu().contiguous(), "epoch": torch.tensor(epoch)}
            atomic_write(path, lambda tmp: save_file(state, str(tmp)))

        with eval_mode([named.model for named in sources]):
            delta = learner.fit(train_images, objective, campaign.seed, campaign.device, delta, start_epoch, save,
                                campaign.progress)  # fmt: skip
        parts = {}
        for name, side, other in (("query", campaign.query, campaign.gallery), ("gallery", campaign.gallery, campaign.query)):
            indices = torch.zeros(0, dtype=torch.long)
            if setting.side in (name, "both"):
                indices = (torch.isin(side.pids, other.pids) & (side.pids > 0)).nonzero().flatten()
            images = apply_perturbation(side.read(indices).float().div(255), delta.cpu())
            parts[name] = AttackedSide.from_images(name, indices, quantize(images) if campaign.quantize_images else images)
        return UniversalOutcome(setting, parts["query"], parts["gallery"], seconds=time.perf_counter() - started,
                                num_steps=learner.epochs, perturbation=delta.cpu())  # fmt: skip
