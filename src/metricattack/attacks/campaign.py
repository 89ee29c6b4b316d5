"""A campaign: which side is attacked, with which references and targets, then evaluation of the result.

Images stay in memory as 8-bit tensors; every model's clean features are computed once and reused by
every setting; only attacked images are passed through the models again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from metricattack.attacks import goals
from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import SCHEDULES, build_step_rule, pixels_to_fraction
from metricattack.data.base import ReIDData, Sample
from metricattack.data.writer import write_images
from metricattack.errors import InputError
from metricattack.evaluation import RetrievalMetrics, evaluate_ranking, pairwise_distance, top_k_valid
from metricattack.evaluation.distance import DISTANCE_METRICS
from metricattack.evaluation.ranking import valid_mask
from metricattack.evaluation.damage import RankingSummary, match_rank_stats, ranking_damage, summarize_ranking
from metricattack.evaluation.perceptibility import perturbation_sizes
from metricattack.evaluation.pipeline import PLAIN, FlipAverage, Pipeline, check_pipelines, with_flip
from metricattack.features import check_finite, read_images
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
    """One attack configuration; eps and step size in pixel units out of 255, as users type them.

    ``attack_distance`` is the distance the objective uses (default: the paper's squared euclidean,
    on L2-normalised features when the model normalises); ``schedule`` is ``paper`` (Bai et al.'s
    I-FGSM / MI-FGSM loop) or ``fast`` (decaying steps, each image dropped once its goal is reached).
    """

    attack: str = "ifgsm"
    eps: float = 5.0
    side: str = "gallery"
    goal: str = "untargeted"
    norm: str = "linf"
    steps: int | None = None
    step_size: float | None = None
    target_pid: int | None = None
    restarts: int | None = None
    attack_distance: str = "sqeuclidean"
    schedule: str = "paper"

    def validate(self) -> None:
        """Raise InputError for a side, goal or target that is not one we know."""
        if self.side not in SIDES:
            raise InputError(f"--side: unknown side {self.side!r} (expected one of {', '.join(SIDES)})")
        if self.goal not in GOALS:
            raise InputError(f"--goal: unknown goal {self.goal!r} (expected one of {', '.join(GOALS)})")
        if self.target_pid is not None and self.goal != "targeted":
            raise InputError("--target-pid is only meaningful with --goal targeted")
        if self.attack_distance not in DISTANCE_METRICS:
            raise InputError(
                f"--attack-distance: unknown distance {self.attack_distance!r} (expected one of {', '.join(DISTANCE_METRICS)})"
            )
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule: unknown schedule {self.schedule!r} (expected one of {', '.join(SCHEDULES)})")
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
        if self.schedule != "paper":
            options["schedule"] = self.schedule
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
        if self.attack_distance != "sqeuclidean":
            parts.append(self.attack_distance)
        if self.schedule != "paper":
            parts.append(self.schedule)
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
    gradient_passes: int = 0  # images passed forward and backward through a source model
    forward_passes: int = 0  # images passed forward only (early-stopping checks, best-iterate scoring)
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # attacked (query, gallery) per target
    rankings: dict[str, RankingSummary] = field(default_factory=dict)  # attacked, per target, deployed pipeline
    perceptibility: dict | None = None  # perturbation sizes of the attacked images, computed once

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


def first_hit_ranks(distances: torch.Tensor, valid: torch.Tensor, hits: torch.Tensor) -> torch.Tensor:
    """Per row of ``distances`` (n,G), the 1-based rank among valid items of the first valid hit
    (ties in gallery order; G + 1 when no valid hit)."""
    order = distances.argsort(dim=1, stable=True)
    valid_sorted = valid.gather(1, order)
    positions = valid_sorted.cumsum(dim=1)  # rank of each valid item in sorted order
    found = (hits & valid).gather(1, order)
    missing = torch.full_like(positions, distances.shape[1] + 1)
    return torch.where(found, positions, missing).min(dim=1).values.float()


def rule_stops(attack: MetricAttack) -> bool:
    """Whether the attack's step rule stops iterating images that reached their goal."""
    return getattr(attack.step_rule, "early_stop", False)


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
        pipelines: Sequence[Pipeline] = (PLAIN,),
    ) -> None:
        if not sources or not targets:
            raise InputError("a campaign needs at least one source and one target model")
        self.pipelines = check_pipelines(pipelines)  # the first is the deployed one: the attack goes through its flip
        sources, targets = ([replace(n, model=with_flip(n.model, self.pipelines[0].flip)) for n in group] for group in (sources, targets))
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
        self._clean: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self._clean_evaluations: dict[tuple[str, str], tuple[RetrievalMetrics, RankingSummary]] = {}

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

    def clean_features(self, named: NamedModel, flip: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) clean features of a model, computed once; ``flip`` overrides the deployed flip averaging."""
        model = named.model if flip is None else with_flip(named.model, flip)
        key = (named.name, isinstance(model, FlipAverage))
        if key not in self._clean:
            self._clean[key] = (
                check_finite(self.features(model, self.query.images), named.name, "query images"),
                check_finite(self.features(model, self.gallery.images), named.name, "gallery images"),
            )
        return self._clean[key]

    def evaluate(
        self, named: NamedModel, query_features: torch.Tensor, gallery_features: torch.Tensor, pipeline: Pipeline | None = None
    ) -> tuple[RetrievalMetrics, torch.Tensor]:
        """Metrics and the distance matrix (Q,G) under the model's own distance, after the query expansion and
        re-ranking of ``pipeline`` (default: the deployed one); the features are already flip-averaged or not."""
        spec = named.model.spec
        distances = (pipeline or self.pipelines[0]).distances(query_features, gallery_features, spec.metric, spec.normalize)
        metrics = evaluate_ranking(
            distances,
            self.query.pids.to(distances.device),
            self.gallery.pids.to(distances.device),
            self.query.camids.to(distances.device),
            self.gallery.camids.to(distances.device),
            average_precision=self.average_precision,
        )
        return metrics, distances

    def clean_metrics(self, named: NamedModel, pipeline: Pipeline | None = None) -> RetrievalMetrics:
        """Metrics of the unattacked retrieval (under the deployed pipeline unless told)."""
        return self.clean_evaluation(named, pipeline)[0]

    def summarize(self, distances: torch.Tensor) -> RankingSummary:
        """First-match ranks and top-10 lists of a distance matrix (Q,G) under the protocol."""
        device = distances.device
        return summarize_ranking(distances, self.query.pids.to(device), self.gallery.pids.to(device),
                                 self.query.camids.to(device), self.gallery.camids.to(device))  # fmt: skip

    def clean_evaluation(self, named: NamedModel, pipeline: Pipeline | None = None) -> tuple[RetrievalMetrics, RankingSummary]:
        """Clean metrics and ranking summary under a pipeline (default: the deployed one), computed once."""
        pipeline = pipeline or self.pipelines[0]
        key = (named.name, pipeline.name)
        if key not in self._clean_evaluations:
            metrics, distances = self.evaluate(named, *self.clean_features(named, pipeline.flip), pipeline)
            self._clean_evaluations[key] = (metrics, self.summarize(distances))
        return self._clean_evaluations[key]

    def clean_result(self, named: NamedModel, pipeline: Pipeline | None = None) -> dict:
        """The clean row of results.json: metrics, the pipeline and the first true match's mean / median rank."""
        metrics, summary = self.clean_evaluation(named, pipeline)
        return {"pipeline": (pipeline or self.pipelines[0]).name, **metrics.as_dict(), **match_rank_stats(summary)}

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
            normalize = named.model.spec.normalize
            if setting.goal == "targeted":  # only the nearest target image decides success: pull toward it
                losses.append(TargetedMetricLoss(setting.attack_distance, normalize, push_weight=0.0, pull="nearest"))
            else:
                losses.append(NonTargetedMetricLoss(setting.attack_distance, normalize))
        attack = MetricAttack([s.model for s in sources], losses, rule)
        started = time.perf_counter()
        empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, 3, 1, 1), torch.zeros(0, dtype=torch.long))
        query_part = gallery_part = empty
        if setting.side in ("query", "both"):
            query_part = self._attack_side(attack, sources, setting, self.query, self.gallery, 0, generator)
        if setting.side in ("gallery", "both"):
            # Both sides: the gallery moves away from the attacked queries, not from their clean features, which
            # they have already left (pushing both sides from clean references moves an identity's pair together).
            references = None
            if setting.side == "both" and len(query_part[0]):
                references = [self._attacked_queries(named, *query_part[:2]) for named in sources]
            gallery_part = self._attack_side(attack, sources, setting, self.gallery, self.query, 1, generator, references)
        return AttackOutcome(
            setting,
            *query_part[:2],
            *gallery_part[:2],
            query_part[2],
            gallery_part[2],
            seconds=time.perf_counter() - started,
            num_steps=getattr(rule, "steps", 1),
            gradient_passes=attack.gradient_passes,
            forward_passes=attack.forward_passes,
        )

    def _attacked_queries(self, named: NamedModel, indices: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """A model's clean query features (Q,D) with the attacked queries' features in their rows."""
        features = self.clean_features(named)[0].clone()
        features[indices.to(self.device)] = self.features(named.model, images)
        return features

    def _attack_side(
        self,
        attack: MetricAttack,
        sources: list[NamedModel],
        setting: AttackSetting,
        side: SideImages,
        reference: SideImages,
        reference_slot: int,  # which of (query, gallery) clean features the references are: the other side
        generator: torch.Generator,
        references: list[torch.Tensor] | None = None,  # per source, default: its clean features of the reference side
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
        references = references or [self.clean_features(named)[1 - reference_slot] for named in sources]
        goal_of = self._goal(setting, sources, side, reference, reference_slot, targets) if rule_stops(attack) else None
        # One buffer up front: a growing list of kept batches fragments the heap, and every later step's
        # temporaries then come from fresh pages (measured 10-15 % of the attack's time on a CPU).
        adversarial = torch.empty((len(indices), *side.images.shape[1:]))
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
            goal = None if goal_of is None else goal_of(batch)
            adv = attack.perturb(images, references, own_mask, target_mask, generator, goal)
            adversarial[start : start + len(batch)] = quantize(adv) if self.quantize_images else adv
        return indices, adversarial, targets[indices]

    def _goal(
        self,
        setting: AttackSetting,
        sources: list[NamedModel],
        side: SideImages,
        reference: SideImages,
        reference_slot: int,
        targets: torch.Tensor,  # (N,) target pid per image of ``side`` (-1: none)
    ):
        """For early stopping: a map from a batch (indices into ``side``) to its ``goal(features, rows)`` test.

        Non-targeted: every true match ranked below rank GOAL_RANK; targeted: the target at rank 1, under the
        clean ranking of the other side (see ``goals``), for every source model.
        """
        device = self.device
        reference_pids, reference_camids = reference.pids.to(device), reference.camids.to(device)
        specs = [named.model.spec for named in sources]
        thresholds = []  # gallery side: per query, the distance a planted / pushed image must beat
        if reference_slot == 1:
            for named, spec in zip(sources, specs):
                query_features, gallery_features = self.clean_features(named)
                distances = pairwise_distance(query_features, gallery_features, spec.metric, spec.normalize)  # (Q,G)
                valid = valid_mask(reference_pids, side.pids.to(device), reference_camids, side.camids.to(device))
                if setting.goal == "targeted":
                    thresholds.append(goals.kth_smallest(distances, valid, 1))
                else:
                    impostors = valid & (reference_pids[:, None] != side.pids.to(device)[None, :])
                    thresholds.append(goals.kth_smallest(distances, impostors, goals.GOAL_RANK))

        def goal_of(batch: torch.Tensor):
            pids, camids = side.pids[batch].to(device), side.camids[batch].to(device)
            own_valid = (pids[:, None] == reference_pids[None, :]) & (camids[:, None] != reference_camids[None, :])
            impostors = (pids[:, None] != reference_pids[None, :]) & (reference_pids[None, :] != -1)
            target_mask = targets[batch].to(device)[:, None] == reference_pids[None, :]

            def goal(features: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
                reached = torch.ones(len(rows), dtype=torch.bool, device=device)
                for number, (adv_features, named, spec) in enumerate(zip(features, sources, specs)):
                    distances = pairwise_distance(
                        adv_features, self.clean_features(named)[1 - reference_slot], spec.metric, spec.normalize
                    )
                    if setting.goal == "targeted" and reference_slot == 1:
                        reached &= goals.ahead_of_thresholds(distances, target_mask[rows], thresholds[number])
                    elif setting.goal == "targeted":
                        competitors = (impostors[rows] | own_valid[rows]) & ~target_mask[rows]
                        reached &= goals.target_first(distances, target_mask[rows], competitors)
                    elif reference_slot == 1:
                        reached &= goals.behind_thresholds(distances, own_valid[rows], thresholds[number])
                    else:
                        reached &= goals.behind_impostors(distances, own_valid[rows], impostors[rows], goals.GOAL_RANK)
                return reached

            return goal

        return goal_of

    # --- evaluation under attack ----------------------------------------------------------
    def evaluate_outcome(self, outcome: AttackOutcome, named: NamedModel, pipeline: Pipeline | None = None) -> tuple[dict, torch.Tensor]:
        """Metrics, ranking damage and perturbation sizes of the attacked retrieval for one target model under a
        pipeline (default: the deployed one), and its distance matrix (Q,G).

        Under the deployed pipeline the attacked features and ranking summary are kept in ``outcome.features``
        and ``outcome.rankings`` for ranking lists.
        """
        deployed = pipeline is None or pipeline == self.pipelines[0]
        pipeline = pipeline or self.pipelines[0]
        model = with_flip(named.model, pipeline.flip)
        query_features, gallery_features = (f.clone() for f in self.clean_features(named, pipeline.flip))
        if len(outcome.query_indices):
            attacked = self.features(model, outcome.query_images)
            query_features[outcome.query_indices.to(self.device)] = check_finite(attacked, named.name, "attacked queries")
        if len(outcome.gallery_indices):
            attacked = self.features(model, outcome.gallery_images)
            gallery_features[outcome.gallery_indices.to(self.device)] = check_finite(attacked, named.name, "attacked gallery images")
        metrics, distances = self.evaluate(named, query_features, gallery_features, pipeline)
        summary = self.summarize(distances)
        if deployed:
            outcome.features[named.name] = (query_features, gallery_features)
            outcome.rankings[named.name] = summary
        result = {"pipeline": pipeline.name, **metrics.as_dict(), **ranking_damage(self.clean_evaluation(named, pipeline)[1], summary)}
        if outcome.setting.goal == "targeted":
            clean_distances = self.evaluate(named, *self.clean_features(named, pipeline.flip), pipeline)[1]
            result.update(self.target_success(outcome, distances, clean_distances))
        if outcome.perceptibility is None:
            sides = ((self.query, outcome.query_indices, outcome.query_images),
                     (self.gallery, outcome.gallery_indices, outcome.gallery_images))  # fmt: skip
            pairs = [(side.images[indices], images) for side, indices, images in sides if len(indices)]
            outcome.perceptibility = perturbation_sizes(pairs, self.batch_size, self.device)
        return {**result, **outcome.perceptibility}, distances

    def target_success(self, outcome: AttackOutcome, distances: torch.Tensor, clean_distances: torch.Tensor | None = None) -> dict:
        """Targeted success at rank 1, 5 and 10, and the mean rank of the nearest target image after
        (and, given the clean distances (Q,G), before) the attack.

        Query side (and both): an attacked query succeeds when an image of its target identity is
        among its top k. Gallery side: a query of a target identity succeeds when a gallery image
        planted for it (attacked toward it) is among its top k. Ranks count valid gallery items only.
        """
        query_pids, gallery_pids = self.query.pids.to(distances.device), self.gallery.pids.to(distances.device)
        valid = valid_mask(query_pids, gallery_pids, self.query.camids.to(distances.device), self.gallery.camids.to(distances.device))
        if len(outcome.query_indices):
            queries = outcome.query_indices.to(distances.device)
            hits = gallery_pids[None, :] == outcome.query_targets.to(distances.device)[:, None]  # (A,G)
        else:
            planted = torch.full_like(gallery_pids, -1)
            planted[outcome.gallery_indices.to(distances.device)] = outcome.gallery_targets.to(distances.device)
            queries = torch.isin(query_pids, planted[planted >= 0]).nonzero().flatten()
            hits = planted[None, :] == query_pids[queries, None]
        result = {}
        for name, matrix in (("after", distances), ("before", clean_distances)):
            if matrix is None:
                continue
            ranks = first_hit_ranks(matrix[queries], valid[queries], hits)
            if name == "after":
                result.update({f"target_success_rank{k}": (ranks <= k).float().mean().nan_to_num().item() for k in (1, 5, 10)})
            result[f"target_rank_{name}"] = ranks.mean().item() if len(ranks) else float("nan")
        return result

    def run(self, setting: AttackSetting, sources: list[NamedModel] | None = None) -> tuple[AttackOutcome, list[dict]]:
        """Attack with the sources, evaluate on every target; one result row per target model."""
        sources = sources or self.sources
        outcome = self.attack(setting, sources)
        rows = []
        for named, pipeline in itertools.product(self.targets, self.pipelines):
            metrics, _ = self.evaluate_outcome(outcome, named, pipeline)
            rows.append(
                {
                    **asdict(setting),
                    "steps": outcome.num_steps,
                    "source": "+".join(s.name for s in sources),
                    "target": named.name,
                    **metrics,
                    "num_attacked": outcome.num_attacked,
                    "gradient_passes": outcome.gradient_passes,
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
