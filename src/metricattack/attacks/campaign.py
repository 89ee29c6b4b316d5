"""A campaign: which side is attacked, with which references and targets, then evaluation of the result.

Images stay in memory as 8-bit tensors; every model's clean features are computed once and reused by
every setting; only attacked images are passed through the models again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import build_step_rule, pixels_to_fraction
from metricattack.data.base import ReIDData, Sample
from metricattack.data.writer import write_images
from metricattack.errors import InputError
from metricattack.evaluation import RetrievalMetrics, evaluate_ranking, pairwise_distance, top_k_valid
from metricattack.features import read_images
from metricattack.models.reid import ReIDModel

SIDES = ("gallery", "query", "both")
GOALS = ("untargeted", "targeted")
# Attacks that are not a per-image step rule (universal, black-box) register an object with
# validate(setting) and __call__(campaign, setting, sources) -> AttackOutcome (see register_campaign_attack).
CAMPAIGN_ATTACKS: dict = {}


def register_campaign_attack(name: str):
    """Class decorator: register an attack that runs on a whole campaign under ``--attack name``."""

    def register(cls):
        CAMPAIGN_ATTACKS[name] = cls()
        return cls

    return register


@dataclass(frozen=True)
class AttackSetting:
    """One attack configuration; eps and step size in pixel units out of 255, as users type them."""

    attack: str = "ifgsm"
    eps: float = 5.0
    side: str = "gallery"
    goal: str = "untargeted"
    norm: str = "linf"
    steps: int | None = None
    step_size: float | None = None
    target_pid: int | None = None
    restarts: int | None = None

    def validate(self) -> None:
        """Raise InputError for a side, goal or target that is not one we know."""
        if self.side not in SIDES:
            raise InputError(f"--side: unknown side {self.side!r} (expected one of {', '.join(SIDES)})")
        if self.goal not in GOALS:
            raise InputError(f"--goal: unknown goal {self.goal!r} (expected one of {', '.join(GOALS)})")
        if self.target_pid is not None and self.goal != "targeted":
            raise InputError("--target-pid is only meaningful with --goal targeted")
        if self.attack in CAMPAIGN_ATTACKS:
            return CAMPAIGN_ATTACKS[self.attack].validate(self)
        self.step_rule()

    def step_rule(self):
        """The step rule, with eps and step size converted from pixels to fractions of 1."""
        options = {"norm": self.norm}
        if self.steps is not None:
            options["steps"] = self.steps
        if self.step_size is not None:
            options["step_size"] = pixels_to_fraction(self.step_size, "--step-size")
        if self.restarts is not None:
            options["restarts"] = self.restarts
        return build_step_rule(self.attack, pixels_to_fraction(self.eps, "--eps"), **options)

    @property
    def key(self) -> str:
        """A short unique name, used to resume runs and name files."""
        parts = [self.attack, self.norm, f"eps{self.eps:g}", self.side, self.goal]
        if self.steps is not None:
            parts.append(f"steps{self.steps}")
        if self.step_size is not None:
            parts.append(f"alpha{self.step_size:g}")
        if self.target_pid is not None:
            parts.append(f"pid{self.target_pid}")
        if self.restarts is not None:
            parts.append(f"restarts{self.restarts}")
        return "-".join(parts)


@dataclass
class NamedModel:
    """A model with the name results are reported under."""

    name: str
    model: ReIDModel


@dataclass
class SideImages:
    """One side's images (8-bit, in memory) with pids and camids."""

    samples: list[Sample]
    images: torch.Tensor  # (N,3,H,W) uint8
    pids: torch.Tensor  # (N,)
    camids: torch.Tensor  # (N,)


@dataclass
class AttackOutcome:
    """The adversarial images of one setting (only the attacked rows) and their target pids."""

    setting: AttackSetting
    query_indices: torch.Tensor  # (Aq,) long
    query_images: torch.Tensor  # (Aq,3,H,W) float in [0,1]
    gallery_indices: torch.Tensor
    gallery_images: torch.Tensor
    query_targets: torch.Tensor  # (Aq,) target pid per attacked query (-1: none)
    gallery_targets: torch.Tensor
    seconds: float
    num_steps: int = 1
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # attacked (query, gallery) per target

    @property
    def num_attacked(self) -> int:
        """Number of images the attack changed (or was allowed to change)."""
        return len(self.query_indices) + len(self.gallery_indices)


def load_side(samples: list[Sample], batch_size: int, image_size: tuple[int, int] | None, workers: int) -> SideImages:
    """Read a split's images into one 8-bit tensor."""
    if not samples:
        raise InputError("no images in this split (expected a non-empty query and gallery)")
    return SideImages(
        samples,
        read_images(samples, batch_size, image_size, workers),
        torch.tensor([s.pid for s in samples]),
        torch.tensor([s.camid for s in samples]),
    )


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round images in [0,1] to 8 bits, as saving them as PNG would."""
    return images.mul(255).round().div(255)


def assign_targets(
    pids: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator, fixed: int | None = None
) -> dict[int, int]:
    """For each identity in ``pids``, a target identity from ``candidates`` other than itself.

    ``fixed`` targets every identity at that pid (identities equal to it get none). Otherwise each
    identity draws uniformly at random, reproducibly for a given generator state.
    """
    identities = sorted(set(pids.tolist()))
    pool = sorted(set(candidates.tolist()) - {0, -1})
    if fixed is not None:
        if fixed not in pool:
            raise InputError(f"--target-pid {fixed}: no such identity among the reference images")
        return {pid: fixed for pid in identities if pid != fixed}
    targets = {}
    for pid in identities:
        options = [c for c in pool if c != pid]
        if options:
            targets[pid] = options[int(torch.randint(len(options), (1,), generator=generator))]
    return targets


class Campaign:
    """Attack a data set's query and/or gallery with source model(s); evaluate on target model(s)."""

    def __init__(
        self,
        data: ReIDData,
        sources: list[NamedModel],
        targets: list[NamedModel],
        device: torch.device,
        batch_size: int = 64,
        seed: int = 0,
        quantize_images: bool = True,
        average_precision: str = "standard",
        image_size: tuple[int, int] | None = None,
        workers: int = 0,
        progress: bool = True,
    ) -> None:
        if not sources or not targets:
            raise InputError("a campaign needs at least one source and one target model")
        self.data = data
        self.sources = sources
        self.targets = targets
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.quantize_images = quantize_images
        self.average_precision = average_precision
        self.progress = progress
        for named in {id(m.model): m for m in sources + targets}.values():
            named.model.to(device).eval()
        self.query = load_side(data.query, batch_size, image_size, workers)
        self.gallery = load_side(data.gallery, batch_size, image_size, workers)
        self._clean: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # --- features -------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: clean features are references inside the attacks' graphs
    def features(self, model: ReIDModel, images: torch.Tensor) -> torch.Tensor:
        """Features (on the device) of 8-bit or float images, in batches."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device)
            batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
            chunks.append(model(batch).float())
        return torch.cat(chunks)

    def clean_features(self, named: NamedModel) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) clean features of a model, computed once."""
        if named.name not in self._clean:
            self._clean[named.name] = (
                self.features(named.model, self.query.images),
                self.features(named.model, self.gallery.images),
            )
        return self._clean[named.name]

    def evaluate(self, named: NamedModel, query_features: torch.Tensor, gallery_features: torch.Tensor) -> tuple[RetrievalMetrics, torch.Tensor]:
        """Metrics and the distance matrix (Q,G) under the model's own distance."""
        spec = named.model.spec
        distances = pairwise_distance(query_features, gallery_features, metric=spec.metric, normalize=spec.normalize)
        metrics = evaluate_ranking(
            distances,
            self.query.pids.to(distances.device),
            self.gallery.pids.to(distances.device),
            self.query.camids.to(distances.device),
            self.gallery.camids.to(distances.device),
            average_precision=self.average_precision,
        )
        return metrics, distances

    def clean_metrics(self, named: NamedModel) -> RetrievalMetrics:
        """Metrics of the unattacked retrieval."""
        return self.evaluate(named, *self.clean_features(named))[0]

    # --- attack ---------------------------------------------------------------------------
    def attack(self, setting: AttackSetting, sources: list[NamedModel] | None = None) -> AttackOutcome:
        """Run one setting with the source model(s) (default: the campaign's); returns the adversarial images."""
        setting.validate()
        sources = sources or self.sources
        if setting.attack in CAMPAIGN_ATTACKS:
            return CAMPAIGN_ATTACKS[setting.attack](self, setting, sources)
        rule = setting.step_rule()
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        losses = []
        for named in sources:
            spec = named.model.spec
            loss_class = TargetedMetricLoss if setting.goal == "targeted" else NonTargetedMetricLoss
            losses.append(loss_class(metric=spec.metric, normalize=spec.normalize))
        attack = MetricAttack([s.model for s in sources], losses, rule)
        started = time.perf_counter()
        empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, 3, 1, 1), torch.zeros(0, dtype=torch.long))
        query_part = gallery_part = empty
        if setting.side in ("query", "both"):
            query_part = self._attack_side(attack, sources, setting, self.query, self.gallery, 0, generator)
        if setting.side in ("gallery", "both"):
            gallery_part = self._attack_side(attack, sources, setting, self.gallery, self.query, 1, generator)
        return AttackOutcome(
            setting,
            *query_part[:2],
            *gallery_part[:2],
            query_part[2],
            gallery_part[2],
            seconds=time.perf_counter() - started,
            num_steps=getattr(rule, "steps", 1),
        )

    def _attack_side(
        self,
        attack: MetricAttack,
        sources: list[NamedModel],
        setting: AttackSetting,
        side: SideImages,
        reference: SideImages,
        reference_slot: int,  # which of (query, gallery) clean features the references are: the other side
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attack the images of ``side`` whose identity appears on the reference side."""
        reference_pids = reference.pids.to(self.device)
        present = torch.isin(side.pids, reference.pids) & (side.pids > 0)
        targets = torch.full_like(side.pids, -1)
        if setting.goal == "targeted":
            target_of = assign_targets(side.pids[present], reference.pids, generator=torch.Generator().manual_seed(self.seed), fixed=setting.target_pid)
            for pid, target in target_of.items():
                targets[side.pids == pid] = target
            present &= targets >= 0
        indices = present.nonzero().flatten()
        references = [self.clean_features(named)[1 - reference_slot] for named in sources]
        adversarial = []
        batches = range(0, len(indices), self.batch_size)
        label = f"{setting.key} ({'query' if reference_slot == 0 else 'gallery'})"
        for start in tqdm(batches, desc=label, disable=not self.progress, leave=False):
            batch = indices[start : start + self.batch_size]
            images = side.images[batch].to(self.device).float().div(255)
            batch_pids = side.pids[batch].to(self.device)
            own_mask = batch_pids[:, None] == reference_pids[None, :]
            target_mask = None
            if setting.goal == "targeted":
                target_mask = targets[batch].to(self.device)[:, None] == reference_pids[None, :]
            adv = attack.perturb(images, references, own_mask, target_mask, generator)
            adversarial.append((quantize(adv) if self.quantize_images else adv).cpu())
        shape = side.images.shape[1:]
        images = torch.cat(adversarial) if adversarial else torch.zeros(0, *shape)
        return indices, images, targets[indices]

    # --- evaluation under attack ----------------------------------------------------------
    def evaluate_outcome(self, outcome: AttackOutcome, named: NamedModel) -> tuple[dict, torch.Tensor]:
        """Metrics of the attacked retrieval for one target model, and its distance matrix (Q,G).

        The attacked features are kept in ``outcome.features`` for ranking lists.
        """
        query_features, gallery_features = (f.clone() for f in self.clean_features(named))
        if len(outcome.query_indices):
            query_features[outcome.query_indices.to(self.device)] = self.features(named.model, outcome.query_images)
        if len(outcome.gallery_indices):
            gallery_features[outcome.gallery_indices.to(self.device)] = self.features(named.model, outcome.gallery_images)
        outcome.features[named.name] = (query_features, gallery_features)
        metrics, distances = self.evaluate(named, query_features, gallery_features)
        result = metrics.as_dict()
        if outcome.setting.goal == "targeted":
            result.update(self.target_success(outcome, distances))
        return result, distances

    def target_success(self, outcome: AttackOutcome, distances: torch.Tensor) -> dict:
        """Targeted success at rank 1 and 5.

        Query side (and both): an attacked query succeeds when an image of its target identity is
        among its top k. Gallery side: a query of a target identity succeeds when a gallery image
        planted for it (attacked toward it) is among its top k.
        """
        top = top_k_valid(
            distances,
            self.query.pids.to(distances.device),
            self.gallery.pids.to(distances.device),
            self.query.camids.to(distances.device),
            self.gallery.camids.to(distances.device),
            5,
        ).cpu()  # (Q,5)
        valid = top >= 0
        if len(outcome.query_indices):
            rows = top[outcome.query_indices]
            hit = (self.gallery.pids[rows.clamp(min=0)] == outcome.query_targets[:, None]) & valid[outcome.query_indices]
        else:
            planted = torch.full_like(self.gallery.pids, -1)
            planted[outcome.gallery_indices] = outcome.gallery_targets
            queries = torch.isin(self.query.pids, outcome.gallery_targets).nonzero().flatten()
            hit = (planted[top[queries].clamp(min=0)] == self.query.pids[queries, None]) & valid[queries]
        if len(hit) == 0:
            return {"target_success_rank1": 0.0, "target_success_rank5": 0.0}
        return {
            "target_success_rank1": hit[:, :1].any(dim=1).float().mean().item(),
            "target_success_rank5": hit.any(dim=1).float().mean().item(),
        }

    def run(self, setting: AttackSetting, sources: list[NamedModel] | None = None) -> tuple[AttackOutcome, list[dict]]:
        """Attack with the sources, evaluate on every target; one result row per target model."""
        sources = sources or self.sources
        outcome = self.attack(setting, sources)
        rows = []
        for named in self.targets:
            metrics, _ = self.evaluate_outcome(outcome, named)
            rows.append(
                {
                    **asdict(setting),
                    "steps": outcome.num_steps,
                    "source": "+".join(s.name for s in sources),
                    "target": named.name,
                    **metrics,
                    "num_attacked": outcome.num_attacked,
                    "seconds": round(outcome.seconds, 3),
                }
            )
        return outcome, rows

    def adversarial_side(self, outcome: AttackOutcome, side: str) -> torch.Tensor:
        """A full side's images (float, [0,1]) with the attacked rows replaced."""
        source = self.query if side == "query" else self.gallery
        images = source.images.float().div(255)
        indices = outcome.query_indices if side == "query" else outcome.gallery_indices
        images[indices] = outcome.query_images if side == "query" else outcome.gallery_images
        return images


def save_adversarial_images(campaign: Campaign, outcome: AttackOutcome, out_dir: str | Path) -> Path:
    """Write the attacked sides as PNGs under ``out_dir`` in the data set's own layout (paths relative to its root).

    Unattacked images of those sides are written too (losslessly), so the tree is complete.
    """
    out_dir = Path(out_dir)
    for side in ("query", "gallery"):
        samples = campaign.query.samples if side == "query" else campaign.gallery.samples
        write_images(campaign.adversarial_side(outcome, side), samples, campaign.data.root, out_dir)
    return out_dir
