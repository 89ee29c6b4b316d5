"""``--attack blackbox``: a campaign's queries attacked through a ranking-only view of the deployed model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from metricattack.attacks.blackbox import DEFAULT_BUDGET, RankingOracle, SquareRankAttack
from metricattack.data.images import quantize
from metricattack.errors import InputError
from metricattack.experiment.chunks import AttackedSide
from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.setting import check_paper_objective
from metricattack.experiment.side_images import has_match

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.setting import AttackSetting, NamedModel


class BlackBoxAttack:
    """``--attack blackbox``: every query image (of an identity in the gallery) is attacked through a ranking-only
    view of the one source model (``--steps``: queries per image, default 1000); query side, non-targeted only."""

    white_box = False  # it only reads rankings: any model that gives features will do
    stores_chunks = False  # it starts over when interrupted, and every process under torchrun runs it whole

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options the black-box attack does not take."""
        check_paper_objective(setting)
        if setting.side != "query" or setting.goal != "untargeted":
            raise InputError("--attack blackbox submits query images: expected --side query --goal untargeted")
        if setting.norm != "linf":
            raise InputError("--attack blackbox is an L-inf attack (expected --norm linf)")
        if any(value is not None for value in (setting.step_size, setting.restarts, setting.target_pid)):
            raise InputError("--attack blackbox does not take --step-size, --restarts or --target-pid")
        self.attack(setting)

    def attack(self, setting: AttackSetting) -> SquareRankAttack:
        """The attack with eps converted from pixels."""
        return SquareRankAttack(setting.eps_fraction, DEFAULT_BUDGET if setting.steps is None else setting.steps)

    def run(self, context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None = None) -> AttackOutcome:
        """Attack the queries in batches against the ranking of the one source model (several are refused);
        ``folder`` is not used (see ``stores_chunks``)."""
        if len(sources) != 1:
            raise InputError("--attack blackbox queries one deployed model (expected one source model)")
        attack = self.attack(setting)
        started = time.perf_counter()
        named = sources[0]
        oracle = RankingOracle(named.model, context.clean_features(named)[1], context.gallery.pids)
        query = context.query
        indices = has_match(query.pids, context.gallery.pids).nonzero().flatten()
        adversarial = []
        for start in range(0, len(indices), context.batch_size):
            batch = indices[start : start + context.batch_size]
            generator = torch.Generator().manual_seed(context.seed * 100_003 + start)  # per batch: budgets are prefixes
            images, _ = attack.run(query.read(batch).float().div(255), query.pids[batch], oracle, generator)
            adversarial.append(quantize(images) if context.quantize_images else images)
        images = torch.cat(adversarial) if adversarial else torch.zeros(0, *query.shape)
        empty = torch.zeros(0, dtype=torch.long)
        return AttackOutcome(setting, AttackedSide.from_images("query", indices, images),
                             AttackedSide.from_images("gallery", empty, torch.zeros(0, *query.shape)),
                             seconds=time.perf_counter() - started, num_steps=attack.budget)  # fmt: skip
