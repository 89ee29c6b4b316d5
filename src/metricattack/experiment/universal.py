"""``--attack uap``: a universal perturbation learned on a campaign's training split, added to its attacked images."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from metricattack.attacks.attack import eval_mode
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.universal import DEFAULT_EPOCHS, UniversalPerturbation, apply_perturbation
from metricattack.data.images import quantize, read_images
from metricattack.errors import InputError
from metricattack.experiment.chunks import AttackedSide
from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.setting import check_paper_objective
from metricattack.experiment.side_images import has_match
from metricattack.system.atomic import atomic_write
from metricattack.system.cache import cache_root

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.setting import AttackSetting, NamedModel


@dataclass
class UniversalOutcome(AttackOutcome):
    """An attack outcome that also carries the universal perturbation (3,H,W), to be shown in the report."""

    perturbation: torch.Tensor | None = None


def cache_key(context: AttackContext, setting: AttackSetting, sources: list[NamedModel], shape: tuple) -> str:
    """A digest of everything the learned perturbation depends on: setting, seed, deployment, weights, training images."""
    deployment = json.dumps(context.deployment.identity, sort_keys=True)
    digest = hashlib.sha256(f"{setting.key}|{context.seed}|{shape}|{context.batch_size}|{deployment}".encode())
    for sample in context.train:
        digest.update(f"{sample.path}|{sample.pid}".encode())
    for named in sources:
        for name, tensor in sorted(named.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


class UniversalAttack:
    """``--attack uap``: a universal perturbation learned on the training split with the source model(s),
    added to every attacked test image (``--steps``: epochs, default 3; ``--step-size`` default 1)."""

    white_box = True  # it follows the source models' gradients
    stores_chunks = False  # it resumes by epoch from its cache (see ``cache_key``); every process learns it whole

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options a universal perturbation does not take."""
        check_paper_objective(setting)
        if setting.goal != "untargeted":
            raise InputError("--attack uap is non-targeted only (expected --goal untargeted)")
        if setting.restarts is not None or setting.target_pid is not None:
            raise InputError("--attack uap does not take --restarts or --target-pid")
        self.perturbation(setting)

    def perturbation(self, setting: AttackSetting, batch_size: int | None = None) -> UniversalPerturbation:
        """The learner with the setting's sizes (as fractions of 1), ``batch_size`` images per step (default: the learner's)."""
        step_size = 1 / 255 if setting.step_size is None else setting.step_size_fraction
        epochs = DEFAULT_EPOCHS if setting.steps is None else setting.steps
        batch = {} if batch_size is None else {"batch_size": batch_size}
        return UniversalPerturbation(setting.eps_fraction, step_size, epochs, setting.norm, **batch)

    def run(self, context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None = None) -> UniversalOutcome:
        """Learn (or resume, or reuse) the perturbation, then add it to the attacked side(s); ``folder`` is not
        used (see ``stores_chunks``)."""
        if not context.train:
            raise InputError("--attack uap learns on the training split, which is empty (expected training images)")
        learner = self.perturbation(setting, context.batch_size)
        started = time.perf_counter()
        shape = tuple(context.query.shape[-2:])
        train_images = read_images(context.train, context.batch_size, shape, progress=context.progress)
        train_pids = torch.tensor([s.pid for s in context.train], device=context.device)
        references = [context.features(named.model, train_images) for named in sources]  # (N,D_m) per model
        losses = [NonTargetedMetricLoss(named.model.spec.metric, named.model.spec.normalize) for named in sources]

        def objective(adversarial: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:  # (B,)
            own_mask = train_pids[indices.to(context.device)][:, None] == train_pids[None, :]
            values = [loss(named.model(adversarial), ref, own_mask) for named, loss, ref in zip(sources, losses, references)]
            return torch.stack(values).mean(dim=0)

        path = cache_root() / "uap" / f"{cache_key(context, setting, sources, shape)}.safetensors"
        delta, start_epoch = None, 0
        if path.is_file():
            saved = load_file(str(path))
            delta, start_epoch = saved["delta"], int(saved["epoch"])

        def save(epoch: int, current: torch.Tensor) -> None:
            state = {"delta": current.cpu().contiguous(), "epoch": torch.tensor(epoch)}
            atomic_write(path, lambda tmp: save_file(state, str(tmp)))

        with eval_mode([named.model for named in sources]):
            delta = learner.fit(train_images, objective, context.seed, context.device, delta, start_epoch, save,
                                context.progress)  # fmt: skip
        parts = {}
        for name, side, other in (("query", context.query, context.gallery), ("gallery", context.gallery, context.query)):
            indices = torch.zeros(0, dtype=torch.long)
            if setting.side in (name, "both"):
                indices = has_match(side.pids, other.pids).nonzero().flatten()
            images = apply_perturbation(side.read(indices).float().div(255), delta.cpu())
            parts[name] = AttackedSide.from_images(name, indices, quantize(images) if context.quantize_images else images)
        return UniversalOutcome(setting, parts["query"], parts["gallery"], seconds=time.perf_counter() - started,
                                num_steps=learner.epochs, perturbation=delta.cpu())  # fmt: skip
