"""A campaign: which side is attacked, with which references and targets, then evaluation of the result.

Images are read from disk when needed (only labels and features stay in memory); every model's clean
features are computed once and reused by every setting; only attacked images are passed through the
models again. A setting attacks its images chunk by chunk: each finished chunk is stored (in a folder when
one is given, so an interrupted setting resumes from its last chunk), and under torchrun the chunks and
the clean feature batches are shared among the processes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from metricattack import distributed
from metricattack.attacks import goals
from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.chunks import COUNTERS, AttackedSide, FolderChunks, MemoryChunks, as_fraction, chunk_ranges
from metricattack.attacks.side_images import SideImages, load_side
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import SCHEDULES, build_step_rule, pixels_to_fraction
from metricattack.data.base import ReIDData
from metricattack.data.writer import write_images
from metricattack.errors import InputError
from metricattack.evaluation import RetrievalMetrics, pairwise_distance
from metricattack.evaluation.ranking import evaluate_rows
from metricattack.evaluation.rows import DistanceRows
from metricattack.evaluation.distance import DISTANCE_METRICS
from metricattack.evaluation.ranking import valid_mask
from metricattack.evaluation.damage import RankingSummary, match_rank_stats, ranking_damage, summarize_ranking
from metricattack.evaluation.perceptibility import perturbation_sizes
from metricattack.evaluation.pipeline import PLAIN, FlipAverage, Pipeline, check_pipelines, with_flip
from metricattack.features import check_finite, to_8bit
from metricattack.interrupt import deferred_signals
from metricattack.models.precision import with_precision
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
class AttackOutcome:
    """The adversarial images of one setting (only the attacked rows of each side, stored chunk by chunk)."""

    setting: AttackSetting
    query: AttackedSide
    gallery: AttackedSide
    seconds: float  # attack time summed over chunks (and over processes under torchrun)
    num_steps: int = 1
    gradient_passes: int = 0  # images passed forward and backward through a source model
    forward_passes: int = 0  # images passed forward only (early-stopping checks, best-iterate scoring)
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # attacked (query, gallery) per target
    rankings: dict[str, RankingSummary] = field(default_factory=dict)  # attacked, per target, deployed pipeline
    perceptibility: dict | None = None  # perturbation sizes of the attacked images, computed once

    @property
    def num_attacked(self) -> int:
        """Number of images the attack changed (or was allowed to change)."""
        return len(self.query) + len(self.gallery)

    # The attacked rows of each side, their target pids (-1: none) and, gathered from every chunk, their images.
    query_indices = property(lambda self: self.query.indices)
    gallery_indices = property(lambda self: self.gallery.indices)
    query_targets = property(lambda self: self.query.targets)
    gallery_targets = property(lambda self: self.gallery.targets)
    query_images = property(lambda self: self.query.images())
    gallery_images = property(lambda self: self.gallery.images())

    def discard(self) -> None:
        """Drop the stored chunks (their folder, when the setting was stored in one)."""
        for side in (self.query, self.gallery):
            side.store.discard()


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


def chunk_seed(seed: int, number: int) -> int:
    """The seed of a setting's chunk ``number``: ``seed`` itself for chunk 0, spread apart for the others."""
    return (seed ^ (number * 0x9E3779B97F4A7C15)) % 2**63


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
        chunk_size: int = 1024,
        amp: str = "off",
        channels_last: bool = False,
    ) -> None:
        if not sources or not targets:
            raise InputError("a campaign needs at least one source and one target model")
        self.pipelines = check_pipelines(pipelines)  # the first is the deployed one: the attack goes through its flip
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.data = data
        self.sources = [self.deploy(n) for n in sources]
        self.targets = [self.deploy(n) for n in targets]
        self.batch_size = batch_size
        self.seed = seed
        self.quantize_images = quantize_images
        self.average_precision = average_precision
        self.progress = progress and distributed.is_main()
        self.chunk_size = chunk_size  # images per stored chunk of a setting, and per read of clean images
        self.query = load_side(data.query, batch_size, image_size, workers)
        self.gallery = load_side(data.gallery, batch_size, image_size, workers)
        self._clean: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self._clean_evaluations: dict[tuple[str, str], tuple[RetrievalMetrics, RankingSummary]] = {}

    def deploy(self, named: NamedModel) -> NamedModel:
        """The model as this campaign runs it: with its precision and memory format, inside the deployed
        pipeline's flip averaging, on the campaign's device, in eval mode (idempotent)."""
        model = with_flip(with_precision(named.model, self.amp, self.channels_last), self.pipelines[0].flip)
        model.to(self.device).eval()
        return replace(named, model=model)

    # --- features -------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: clean features are references inside the attacks' graphs
    def features(self, model: ReIDModel, images: torch.Tensor) -> torch.Tensor:
        """Features (on the device) of 8-bit or float images, in batches."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            chunks.append(model(as_fraction(images[start : start + self.batch_size].to(self.device))).float())
        return torch.cat(chunks)

    def side_features(self, model: ReIDModel, side: SideImages, desc: str) -> torch.Tensor:
        """Features (on the device) of a whole side's clean images, read from disk a chunk at a time; under
        torchrun each process embeds its share of the chunks and every process gets them all."""
        ranges = chunk_ranges(len(side), self.chunk_size)

        def embed(number: int) -> torch.Tensor:
            return distributed.portable(self.features(model, side.read(range(*ranges[number]))))

        parts = distributed.share(tqdm(range(len(ranges)), desc=desc, disable=not self.progress, leave=False), embed)
        return torch.cat([parts[number].to(self.device) for number in range(len(ranges))])

    def clean_features(self, named: NamedModel, flip: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) clean features of a model, computed once; ``flip`` overrides the deployed flip averaging."""
        model = named.model if flip is None else with_flip(named.model, flip)
        key = (named.name, isinstance(model, FlipAverage))
        if key not in self._clean:
            self._clean[key] = (
                check_finite(self.side_features(model, self.query, f"features of {named.name} (query)"), named.name, "query images"),
                check_finite(self.side_features(model, self.gallery, f"features of {named.name} (gallery)"), named.name, "gallery images"),
            )
        return self._clean[key]

    def evaluate(
        self, named: NamedModel, query_features: torch.Tensor, gallery_features: torch.Tensor, pipeline: Pipeline | None = None
    ) -> tuple[RetrievalMetrics, DistanceRows]:
        """Metrics and the distances (Q,G) (rows on demand) under the model's own distance, after the query expansion
        and re-ranking of ``pipeline`` (default: the deployed one); the features are already flip-averaged or not."""
        spec = named.model.spec
        distances = (pipeline or self.pipelines[0]).distance_rows(query_features, gallery_features, spec.metric, spec.normalize)
        labels = self.labels(query_features.device)
        return evaluate_rows(distances, len(query_features), len(gallery_features), labels, self.average_precision), distances

    def labels(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Query pids, gallery pids, query camids, gallery camids on ``device``."""
        return tuple(t.to(device) for t in (self.query.pids, self.gallery.pids, self.query.camids, self.gallery.camids))

    def clean_metrics(self, named: NamedModel, pipeline: Pipeline | None = None) -> RetrievalMetrics:
        """Metrics of the unattacked retrieval (under the deployed pipeline unless told)."""
        return self.clean_evaluation(named, pipeline)[0]

    def summarize(self, distances: DistanceRows | torch.Tensor) -> RankingSummary:
        """First-match ranks and top-10 lists of the distances (Q,G) under the protocol, a chunk of queries at a time."""
        distances = DistanceRows.of_matrix(distances) if isinstance(distances, torch.Tensor) else distances
        parts = []
        for start, stop, rows in distances.chunks():
            query_pids, gallery_pids, query_camids, gallery_camids = self.labels(rows.device)
            parts.append(summarize_ranking(rows, query_pids[start:stop], gallery_pids, query_camids[start:stop], gallery_camids))
        return RankingSummary(torch.cat([p.first_match_rank for p in parts]), torch.cat([p.top for p in parts]))

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
    def attack(self, setting: AttackSetting, sources: list[NamedModel] | None = None, folder: Path | None = None) -> AttackOutcome:
        """Run one setting with the source model(s) (default: the campaign's); returns the adversarial images.

        With ``folder`` each finished chunk is stored there, and chunks already there are reused: an
        interrupted setting resumes from its last finished chunk.
        """
        setting.validate()
        sources = [self.deploy(n) for n in sources] if sources else self.sources  # e.g. a transfer source of a plan
        if setting.attack in CAMPAIGN_ATTACKS:
            return CAMPAIGN_ATTACKS[setting.attack](self, setting, sources)
        rule = setting.step_rule()
        losses = []
        for named in sources:
            normalize = named.model.spec.normalize
            if setting.goal == "targeted":  # only the nearest target image decides success: pull toward it
                losses.append(TargetedMetricLoss(setting.attack_distance, normalize, push_weight=0.0, pull="nearest"))
            else:
                losses.append(NonTargetedMetricLoss(setting.attack_distance, normalize))
        attack = MetricAttack([s.model for s in sources], losses, rule)
        empty = torch.zeros(0, dtype=torch.long)
        query = AttackedSide("query", empty, empty)
        gallery = AttackedSide("gallery", empty, empty)
        if setting.side in ("query", "both"):
            query = self._attack_side(attack, sources, setting, self.query, self.gallery, 0, folder)
        if setting.side in ("gallery", "both"):
            # Both sides: the gallery moves away from the attacked queries, not from their clean features, which
            # they have already left (pushing both sides from clean references moves an identity's pair together).
            references = None
            if setting.side == "both" and len(query):
                references = [self._attacked_queries(named, query) for named in sources]
            gallery = self._attack_side(attack, sources, setting, self.gallery, self.query, 1, folder, references, first_chunk=len(query.ranges()))
        counters = {key: query.counters[key] + gallery.counters[key] for key in COUNTERS}
        return AttackOutcome(setting, query, gallery, seconds=counters["seconds"], num_steps=getattr(rule, "steps", 1),
                             gradient_passes=counters["gradient_passes"], forward_passes=counters["forward_passes"])  # fmt: skip

    def _attacked_queries(self, named: NamedModel, query: AttackedSide) -> torch.Tensor:
        """A model's clean query features (Q,D) with the attacked queries' features in their rows."""
        features = self.clean_features(named)[0].clone()
        for indices, images in query.chunks():
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
        folder: Path | None,
        references: list[torch.Tensor] | None = None,  # per source, default: its clean features of the reference side
        first_chunk: int = 0,  # the setting's number of this side's first chunk (seeds its random starts)
    ) -> AttackedSide:
        """Attack, chunk by chunk, the images of ``side`` whose identity appears on the reference side."""
        reference_pids = reference.pids.to(self.device)
        present = torch.isin(side.pids, reference.pids) & (side.pids > 0)
        targets = torch.full_like(side.pids, -1)
        if setting.goal == "targeted":
            target_of = assign_targets(side.pids[present], reference.pids, generator=torch.Generator().manual_seed(self.seed), fixed=setting.target_pid)
            for pid, target in target_of.items():
                targets[side.pids == pid] = target
            present &= targets >= 0
        indices = present.nonzero().flatten()
        name = "query" if reference_slot == 0 else "gallery"
        store = MemoryChunks() if folder is None else FolderChunks(folder)
        attacked = AttackedSide(name, indices, targets[indices], store, self.chunk_size)
        references = references or [self.clean_features(named)[1 - reference_slot] for named in sources]
        goal_of = self._goal(setting, sources, side, reference, reference_slot, targets) if rule_stops(attack) else None

        def attack_chunk(number: int):
            start, stop = attacked.ranges()[number]
            with deferred_signals():  # a Ctrl-C or SIGTERM takes effect once this chunk is stored
                started, passes = time.perf_counter(), (attack.gradient_passes, attack.forward_passes)
                # The chunk's own generator: random starts do not depend on which chunks ran before (resume, torchrun).
                generator = torch.Generator(device=self.device).manual_seed(chunk_seed(self.seed, first_chunk + number))
                chunk = indices[start:stop]
                images = side.read(chunk)
                adversarial = torch.empty(images.shape, dtype=torch.uint8 if self.quantize_images else torch.float32)
                for offset in range(0, len(chunk), self.batch_size):
                    batch = chunk[offset : offset + self.batch_size]
                    clean = images[offset : offset + len(batch)].to(self.device).float().div(255)
                    own_mask = side.pids[batch].to(self.device)[:, None] == reference_pids[None, :]
                    target_mask = None
                    if setting.goal == "targeted":
                        target_mask = targets[batch].to(self.device)[:, None] == reference_pids[None, :]
                    goal = None if goal_of is None else goal_of(batch)
                    adv = attack.perturb(clean, references, own_mask, target_mask, generator, goal)
                    adversarial[offset : offset + len(batch)] = to_8bit(adv) if self.quantize_images else adv
                counters = {
                    "gradient_passes": attack.gradient_passes - passes[0],
                    "forward_passes": attack.forward_passes - passes[1],
                    "seconds": time.perf_counter() - started,
                }
                store.save(attacked.chunk_name(number), adversarial.cpu(), counters)
            return None if isinstance(store, FolderChunks) else (adversarial.cpu(), counters)  # a folder is shared on disk

        chunks = range(len(attacked.ranges()))
        label = f"{setting.key} ({name})"
        stored = {number for number in chunks if store.load_counters(attacked.chunk_name(number)) is not None}
        shared = distributed.share(tqdm(chunks, desc=label, disable=not self.progress, leave=False), attack_chunk, stored.__contains__)
        for number, payload in shared.items():  # other processes' chunks, when they are not on a shared disk
            if payload is not None and not distributed.mine(number):
                store.save(attacked.chunk_name(number), *payload)
        distributed.barrier()  # every process's chunks are stored before anyone reads them
        for number in chunks:
            counters = store.load_counters(attacked.chunk_name(number))
            if counters is None:
                raise RuntimeError(f"chunk {attacked.chunk_name(number)} of {setting.key} is missing after the attack")
            attacked.counters = {key: attacked.counters[key] + counters.get(key, 0) for key in COUNTERS}
        return attacked

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
            side_pids, side_camids = side.pids.to(device), side.camids.to(device)
            for named, spec in zip(sources, specs):
                parts = []
                for start, stop, distances in PLAIN.distance_rows(*self.clean_features(named), spec.metric, spec.normalize).chunks():
                    pids, camids = reference_pids[start:stop], reference_camids[start:stop]
                    valid = valid_mask(pids, side_pids, camids, side_camids)
                    if setting.goal == "targeted":
                        parts.append(goals.kth_smallest(distances, valid, 1))
                    else:
                        parts.append(goals.kth_smallest(distances, valid & (pids[:, None] != side_pids[None, :]), goals.GOAL_RANK))
                thresholds.append(torch.cat(parts))

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
        for features, attacked, what in ((query_features, outcome.query, "attacked queries"),
                                         (gallery_features, outcome.gallery, "attacked gallery images")):  # fmt: skip
            for indices, images in attacked.chunks():
                features[indices.to(self.device)] = check_finite(self.features(model, images), named.name, what)
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
            pairs = ((side.read(indices), images) for side, attacked in ((self.query, outcome.query), (self.gallery, outcome.gallery))
                     for indices, images in attacked.chunks())  # fmt: skip
            outcome.perceptibility = perturbation_sizes(pairs, self.batch_size, self.device)
        return {**result, **outcome.perceptibility}, distances

    def target_success(self, outcome: AttackOutcome, distances: DistanceRows, clean_distances: DistanceRows | None = None) -> dict:
        """Targeted success at rank 1, 5 and 10, and the mean rank of the nearest target image after
        (and, given the clean distances (Q,G), before) the attack.

        Query side (and both): an attacked query succeeds when an image of its target identity is
        among its top k. Gallery side: a query of a target identity succeeds when a gallery image
        planted for it (attacked toward it) is among its top k. Ranks count valid gallery items only.
        """
        query_pids, gallery_pids, query_camids, gallery_camids = self.labels(self.device)
        if len(outcome.query_indices):
            queries, targets = outcome.query_indices.to(self.device), outcome.query_targets.to(self.device)
        else:
            planted = torch.full_like(gallery_pids, -1)
            planted[outcome.gallery_indices.to(self.device)] = outcome.gallery_targets.to(self.device)
            queries = torch.isin(query_pids, planted[planted >= 0]).nonzero().flatten()

        def hits(chosen: torch.Tensor) -> torch.Tensor:  # (n,G) for the queries at positions ``chosen`` of ``queries``
            if len(outcome.query_indices):
                return gallery_pids[None, :] == targets[chosen, None]
            return planted[None, :] == query_pids[queries[chosen], None]

        result = {}
        for name, rows in (("after", distances), ("before", clean_distances)):
            if rows is None:
                continue
            ranks = []
            for start, stop in rows.ranges():  # only the rows of the queries that count, a chunk at a time
                chosen = ((queries >= start) & (queries < stop)).nonzero().flatten()
                if len(chosen):
                    picked = queries[chosen]
                    valid = valid_mask(query_pids[picked], gallery_pids, query_camids[picked], gallery_camids)
                    ranks.append(first_hit_ranks(rows(start, stop)[picked - start], valid, hits(chosen)))
            ranks = torch.cat(ranks) if ranks else torch.zeros(0)
            if name == "after":
                result.update({f"target_success_rank{k}": (ranks <= k).float().mean().nan_to_num().item() for k in (1, 5, 10)})
            result[f"target_rank_{name}"] = ranks.mean().item() if len(ranks) else float("nan")
        return result

    def run(self, setting: AttackSetting, sources: list[NamedModel] | None = None, folder: Path | None = None) -> tuple[AttackOutcome, list[dict]]:
        """Attack with the sources (chunks stored in ``folder`` if given), evaluate on every target; one result
        row per target model and pipeline."""
        sources = sources or self.sources
        outcome = self.attack(setting, sources, folder)
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


def save_adversarial_images(campaign: Campaign, outcome: AttackOutcome, out_dir: str | Path) -> Path:
    """Write the attacked sides as PNGs under ``out_dir`` in the data set's own layout (paths relative to its root).

    Unattacked images of those sides are written too (losslessly), so the tree is complete; a chunk at a time.
    """
    out_dir = Path(out_dir)
    for side, attacked in ((campaign.query, outcome.query), (campaign.gallery, outcome.gallery)):
        for indices, images in attacked.chunks():
            write_images(images, [side.samples[i] for i in indices], campaign.data.root, out_dir)
        untouched = torch.ones(len(side), dtype=torch.bool)
        untouched[attacked.indices] = False
        rest = untouched.nonzero().flatten()
        for start, stop in chunk_ranges(len(rest), campaign.chunk_size):
            chunk = rest[start:stop]
            write_images(side.read(chunk).float().div(255), [side.samples[i] for i in chunk], campaign.data.root, out_dir)
    return out_dir
