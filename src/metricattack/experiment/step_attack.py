"""A step-rule attack over a campaign's images: the attacked side(s), chunk by chunk, stored and resumable.

Each chunk is attacked in batches with its own random generator (so random starts do not depend on
which chunks ran before), stored whole once finished, and shared among processes under torchrun.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.margin import RankingMarginLoss
from metricattack.data.images import to_8bit
from metricattack.errors import InputError
from metricattack.experiment.chunks import STAGE_PREFIX, AttackedSide, FolderChunks, MemoryChunks
from metricattack.experiment.goals import GOAL_RANK, goal_tests, ranking_thresholds
from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.side_images import SideImages, has_match
from metricattack.experiment.targets import assign_targets
from metricattack.system import distributed
from metricattack.system.signals import deferred_signals

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.setting import AttackSetting, NamedModel


PARTIAL_SECONDS = 60.0  # inside a chunk, its finished batches are saved at least this often (and on a stop)


def rule_stops(attack: MetricAttack) -> bool:
    """Whether the attack stops iterating images that reached their goal (its step rule's ``early_stop``)."""
    return getattr(attack, "early_stop", None) or getattr(attack.step_rule, "early_stop", False)


def chunk_seed(seed: int, number: int) -> int:
    """The seed of a setting's chunk ``number``: ``seed`` itself for chunk 0, spread apart for the others."""
    return (seed ^ (number * 0x9E3779B97F4A7C15)) % 2**63


def setting_losses(setting: AttackSetting, sources: list[NamedModel], thresholds: list[torch.Tensor] | None = None) -> list:
    """The setting's objective, one loss per source model; ``thresholds`` (one (R,) per source): the margin's
    fixed per-reference thresholds when the references rank the attacked images (gallery side)."""
    losses = []
    for number, named in enumerate(sources):
        spec = named.model.spec
        if setting.attack_loss == "margin":  # ranks as the model is evaluated: its own distance
            fixed = None if thresholds is None else thresholds[number]
            losses.append(RankingMarginLoss(spec.metric, spec.normalize, GOAL_RANK, fixed))
        elif setting.goal == "targeted":  # only the nearest target image decides success: pull toward it
            losses.append(TargetedMetricLoss(setting.attack_distance, spec.normalize, push_weight=0.0, pull="nearest"))
        else:
            losses.append(NonTargetedMetricLoss(setting.attack_distance, spec.normalize))
    return losses


def margin_thresholds(context: AttackContext, sources: list[NamedModel], references: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gallery side, per source: each reference query's k-th nearest impostor distance in the clean gallery."""
    return [ranking_thresholds(queries, context.clean_features(named)[1], named.model.spec, context.query, context.gallery,
                               GOAL_RANK, impostors_only=True) for queries, named in zip(references, sources)]  # fmt: skip


class StepRuleAttack:
    """A per-image gradient attack: the setting's step rule, run chunk by chunk over the attacked side(s)."""

    white_box = True
    stores_chunks = True

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError when the step rule does not take the setting's options, or the ranking margin
        (``--attack-loss margin``) does not go with them."""
        if setting.attack_loss != "paper":
            if setting.goal != "untargeted":
                raise InputError(f"--attack-loss {setting.attack_loss} is non-targeted only (expected --goal untargeted)")
            if setting.attack_distance != "sqeuclidean":
                raise InputError(f"--attack-distance does not apply to --attack-loss {setting.attack_loss}: it ranks with "
                                 "each model's evaluation distance (--distance)")  # fmt: skip
        setting.step_rule()

    def run(self, context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
        """The adversarial images, stored chunk by chunk (in ``folder`` when given)."""
        return attack_with_step_rule(context, setting, sources, folder)


def attack_with_step_rule(context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
    """The adversarial images of a step-rule setting: the attacked side(s) chunk by chunk (stored in ``folder`` if given)."""
    rule = setting.step_rule()
    models = [s.model for s in sources]

    def make_attack(references: list[torch.Tensor], reference_slot: int) -> MetricAttack:
        thresholds = None
        if setting.attack_loss == "margin" and reference_slot == 1:  # each query's k-th nearest impostor in the gallery
            thresholds = margin_thresholds(context, sources, references)
        return MetricAttack(models, setting_losses(setting, sources, thresholds), rule)

    return attack_sides(context, setting, sources, folder, make_attack, getattr(rule, "steps", 1))


def attack_sides(context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None,
                 make_attack: Callable[[list[torch.Tensor], int], MetricAttack], num_steps: int) -> AttackOutcome:  # fmt: skip
    """Attack the setting's side(s), each with ``make_attack(references, reference_slot)`` (references: per source,
    the features the side is attacked against; slot 0: they are gallery features, 1: query features)."""
    empty = torch.zeros(0, dtype=torch.long)
    query = AttackedSide("query", empty, empty)
    gallery = AttackedSide("gallery", empty, empty)
    if setting.side in ("query", "both"):
        references = [context.clean_features(named)[1] for named in sources]
        query = attack_side(context, make_attack(references, 0), sources, setting, context.query, context.gallery, 0, folder, references)
    if setting.side in ("gallery", "both"):
        # Both sides: the gallery moves away from the attacked queries, not from their clean features, which
        # they have already left (pushing both sides from clean references moves an identity's pair together).
        references = [context.clean_features(named)[0] for named in sources]
        if setting.side == "both" and len(query):
            references = [attacked_queries(context, named, query) for named in sources]
        gallery = attack_side(context, make_attack(references, 1), sources, setting, context.gallery, context.query, 1, folder,
                              references, first_chunk=len(query.ranges()))  # fmt: skip
    counters = add_counters(query.counters, gallery.counters)
    stages: dict[str, dict] = {}
    for key, value in counters.items():
        if key.startswith(STAGE_PREFIX):
            stage, _, counter = key[len(STAGE_PREFIX):].partition("/")
            stages.setdefault(stage, {})[counter] = value
    return AttackOutcome(setting, query, gallery, seconds=counters["seconds"], num_steps=num_steps, stages=stages,
                         gradient_passes=counters["gradient_passes"], forward_passes=counters["forward_passes"])  # fmt: skip


def add_counters(first: dict, second: dict) -> dict:
    """Counters added key by key (a key missing from one counts 0)."""
    return {key: first.get(key, 0) + second.get(key, 0) for key in {**first, **second}}


def attacked_queries(context: AttackContext, named: NamedModel, query: AttackedSide) -> torch.Tensor:
    """A model's clean query features (Q,D) with the attacked queries' features in their rows."""
    features = context.clean_features(named)[0].clone()
    for indices, images in query.chunks():
        features[indices.to(context.device)] = context.features(named.model, images)
    return features


def attack_side(
    context: AttackContext,
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
    """Attack, chunk by chunk, the images of ``side`` whose identity appears on the reference side.

    The attack's ``counters()`` (passes, per stage for an ensemble) are stored with each chunk and summed."""
    reference_pids, reference_camids = reference.pids.to(context.device), reference.camids.to(context.device)
    present = has_match(side.pids, reference.pids)
    targets = torch.full_like(side.pids, -1)
    if setting.goal == "targeted":
        target_of = assign_targets(side.pids[present], reference.pids, generator=torch.Generator().manual_seed(context.seed), fixed=setting.target_pid)
        for pid, target in target_of.items():
            targets[side.pids == pid] = target
        present &= targets >= 0
    indices = present.nonzero().flatten()
    name = "query" if reference_slot == 0 else "gallery"
    store = MemoryChunks() if folder is None else FolderChunks(folder)
    attacked = AttackedSide(name, indices, targets[indices], store, context.chunk_size)
    references = references or [context.clean_features(named)[1 - reference_slot] for named in sources]
    goal_of = goal_tests(context, setting, sources, side, reference, reference_slot, targets) if rule_stops(attack) else None

    def masks(batch: torch.Tensor) -> dict:
        """The batch's masks over the references, by the names ``perturb`` takes."""
        own_mask = side.pids[batch].to(context.device)[:, None] == reference_pids[None, :]
        target_mask = impostor_mask = None
        if setting.goal == "targeted":
            target_mask = targets[batch].to(context.device)[:, None] == reference_pids[None, :]
        if setting.counted_pairs:  # only the pairs the ranking counts: no junk, no same-camera match
            impostor_mask = ~own_mask & (reference_pids[None, :] != -1)
            own_mask = own_mask & (side.camids[batch].to(context.device)[:, None] != reference_camids[None, :])
        return {"own_mask": own_mask, "target_mask": target_mask, "impostor_mask": impostor_mask}

    def attack_chunk(number: int):
        start, stop = attacked.ranges()[number]
        name, chunk = attacked.chunk_name(number), indices[start:stop]
        images = side.read(chunk)
        adversarial = torch.empty(images.shape, dtype=torch.uint8 if context.quantize_images else torch.float32)
        # The chunk's own generator: random starts do not depend on which chunks ran before (resume, torchrun).
        generator = torch.Generator(device=context.device).manual_seed(chunk_seed(context.seed, first_chunk + number))
        finished, counters = 0, {}
        partial = store.load_partial(name, context.batch_size, generator.device.type, adversarial)
        if partial is not None:
            kept, counters, state = partial  # the batches finished before a stop, and the generator's state after them
            finished = len(kept)
            adversarial[:finished] = kept
            generator.set_state(state)
        saved = time.perf_counter()
        for offset in range(finished, len(chunk), context.batch_size):
            with deferred_signals() as held:  # a Ctrl-C or SIGTERM takes effect once this batch is saved
                started, before = time.perf_counter(), attack.counters()
                batch = chunk[offset : offset + context.batch_size]
                clean = images[offset : offset + len(batch)].to(context.device).float().div(255)
                adv = attack.perturb(clean, references, generator=generator, goal=None if goal_of is None else goal_of(batch), **masks(batch))
                adversarial[offset : offset + len(batch)] = to_8bit(adv) if context.quantize_images else adv
                spent = {key: value - before.get(key, 0) for key, value in attack.counters().items()}
                counters = add_counters(counters, {**spent, "seconds": time.perf_counter() - started})
                finished = offset + len(batch)
                if finished == len(chunk):  # inside the batch's block: a stop during the last batch keeps the chunk
                    store.save(name, adversarial.cpu(), counters)
                    store.discard_partial(name)
                elif held or time.perf_counter() - saved >= PARTIAL_SECONDS:
                    store.save_partial(name, adversarial[:finished].cpu(), counters, generator.get_state(), context.batch_size,
                                       generator.device.type)  # fmt: skip
                    saved = time.perf_counter()
        return None if isinstance(store, FolderChunks) else (adversarial.cpu(), counters)  # a folder is shared on disk

    chunks = range(len(attacked.ranges()))
    label = f"{setting.key} ({name})"
    stored = {number for number in chunks if store.load_counters(attacked.chunk_name(number)) is not None}
    shared = distributed.share(tqdm(chunks, desc=label, disable=not context.progress, leave=False), attack_chunk, stored.__contains__)
    for number, payload in shared.items():  # other processes' chunks, when they are not on a shared disk
        if payload is not None and not distributed.mine(number):
            store.save(attacked.chunk_name(number), *payload)
    distributed.barrier()  # every process's chunks are stored before anyone reads them
    for number in chunks:
        counters = store.load_counters(attacked.chunk_name(number))
        if counters is None:
            raise RuntimeError(f"chunk {attacked.chunk_name(number)} of {setting.key} is missing after the attack")
        attacked.counters = add_counters(attacked.counters, counters)
    return attacked
