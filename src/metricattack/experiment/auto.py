"""``--attack auto``: a fixed, parameter-free ensemble of attacks, the way AutoAttack (Croce & Hein, ICML 2020)
evaluates a classifier, for a ranking.

Per attacked image, in this order, each stage only on the images whose goal (every true match ranked behind
``GOAL_RANK`` impostors) no attack has reached yet, each from the clean image:

1. ``apgd-paper``: APGD on the paper's objective (push away from the counted true matches);
2. ``apgd-margin``: APGD on the ranking margin (``attacks.margin.RankingMarginLoss``);
3. ``apgd-targeted``: targeted APGD toward the identity of the image's nearest impostor;
4. ``square``: the rank-only random search of ``attacks.blackbox`` on the image's exposure (L-inf only): it
   reads no gradient, so it finds what masked or obfuscated gradients hide from the first three.

Each APGD stage has ``--steps`` iterations (default ``AUTO_STEPS``), the search as many queries. Per image the
most damaging result is kept (goal reached first, then the lowest ``exposure``), so ``auto`` is never weaker
than any of its stages. Passes and images per stage are recorded (``AttackOutcome.stages``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from metricattack.attacks.apgd import APGD
from metricattack.attacks.attack import MetricAttack, eval_mode
from metricattack.attacks.blackbox import SquareRankAttack
from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance
from metricattack.experiment.chunks import STAGE_PREFIX
from metricattack.experiment.exposure import ImpostorDistances, exposure
from metricattack.experiment.goals import GOAL_RANK
from metricattack.experiment.setting import check_paper_objective
from metricattack.experiment.step_attack import attack_sides, setting_losses

if TYPE_CHECKING:
    from metricattack.experiment.context import AttackContext
    from metricattack.experiment.outcome import AttackOutcome
    from metricattack.experiment.setting import AttackSetting, NamedModel

AUTO_STEPS = 25  # iterations of each APGD stage (and queries of the search) per image; see docs/results.md
STAGES = ("apgd-paper", "apgd-margin", "apgd-targeted", "square")


class AutoEnsemble:
    """The stages of ``auto`` on one batch, with the interface of ``MetricAttack`` (``perturb``, ``counters``).

    ``own_mask`` / ``impostor_mask`` given to ``perturb`` hold only the pairs the ranking counts; ``ranked_by``
    (per source, gallery side only) the references' impostor distances that rank a gallery image.
    """

    early_stop = True  # the caller passes a goal test

    def __init__(self, setting: AttackSetting, sources: list[NamedModel], eps: float, steps: int, reference_pids: torch.Tensor,
                 thresholds: list[torch.Tensor] | None, ranked_by: list[ImpostorDistances] | None) -> None:  # fmt: skip
        self.models = [named.model for named in sources]
        self.specs = [model.spec for model in self.models]
        self.reference_pids = reference_pids
        self.ranked_by = ranked_by
        rule = APGD(eps, steps, setting.norm, early_stop=True)
        objectives = {"apgd-paper": setting, "apgd-margin": replace(setting, attack_loss="margin"),
                      "apgd-targeted": replace(setting, goal="targeted")}  # fmt: skip
        self.stages = {name: MetricAttack(self.models, setting_losses(stage, sources, thresholds if name == "apgd-margin" else None), rule)
                       for name, stage in objectives.items()}  # fmt: skip
        self.search = SquareRankAttack(eps, steps) if setting.norm == "linf" else None
        self.forward_passes = 0  # the ensemble's own: scoring candidates, choosing targets, the search's queries
        self.per_stage = {name: {"images": 0, "gradient_passes": 0, "forward_passes": 0} for name in STAGES}

    def counters(self) -> dict[str, int]:
        """Passes so far, in total and per stage (``stage/NAME/COUNTER``)."""
        totals = {"gradient_passes": sum(a.gradient_passes for a in self.stages.values()),
                  "forward_passes": self.forward_passes + sum(a.forward_passes for a in self.stages.values())}  # fmt: skip
        for name, counts in self.per_stage.items():
            totals.update({f"{STAGE_PREFIX}{name}/{key}": value for key, value in counts.items()})
        return totals

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.forward_passes += len(images) * len(self.models)
        with torch.no_grad():
            return [model(images) for model in self.models]

    def _assess(self, images, rows, references, own, impostors, goal) -> tuple[torch.Tensor, torch.Tensor]:
        """(exposure (A,), goal reached (A,)) of images at batch ``rows``, averaged over the sources."""
        features = self._features(images)
        values = torch.stack([
            exposure(pairwise_distance(f, ref, spec.metric, spec.normalize), own[rows], impostors[rows],
                     None if self.ranked_by is None else self.ranked_by[number])
            for number, (f, ref, spec) in enumerate(zip(features, references, self.specs))
        ]).mean(dim=0)  # fmt: skip
        return values, goal(features, rows)

    def _nearest_impostor_identity(self, images, rows, references, impostors) -> torch.Tensor:
        """(A,R) bool: the references of the identity of each image's nearest counted impostor under the first source,
        an identity (pid > 0) when it has one, not a distractor (pid 0: no identity to pull toward)."""
        spec = self.specs[0]
        self.forward_passes += len(images)
        with torch.no_grad():
            distances = pairwise_distance(self.models[0](images), references[0], spec.metric, spec.normalize)
        candidates = impostors[rows] & (self.reference_pids > 0)[None, :]
        candidates = torch.where(candidates.any(dim=1, keepdim=True), candidates, impostors[rows])
        nearest = distances.masked_fill(~candidates, float("inf")).argmin(dim=1)
        return self.reference_pids[None, :] == self.reference_pids[nearest][:, None]

    def perturb(self, images, references, own_mask, target_mask=None, generator=None, goal=None, impostor_mask=None) -> torch.Tensor:
        """Adversarial images (detached): per image the most damaging of the stages' results (see the module)."""
        if goal is None or impostor_mask is None:
            raise ValueError("the auto ensemble needs a goal test and the impostor mask")
        everything = torch.arange(len(images), device=images.device)
        with eval_mode(self.models):
            best = images.detach().clone()
            best_exposure, reached = self._assess(best, everything, references, own_mask, impostor_mask, goal)
            left = everything[~reached & impostor_mask.any(dim=1)]
            for name, attack in self.stages.items():
                if not len(left):
                    break
                before, self.per_stage[name]["images"] = attack.counters(), self.per_stage[name]["images"] + len(left)
                targets = self._nearest_impostor_identity(images[left], left, references, impostor_mask) if name == "apgd-targeted" else None
                ranks = impostor_mask[left] if name == "apgd-margin" else None  # the one objective that ranks
                candidates = attack.perturb(images[left], references, own_mask[left], targets, generator,
                                            lambda features, sub, left=left: goal(features, left[sub]), ranks)  # fmt: skip
                for key, value in attack.counters().items():
                    self.per_stage[name][key] += value - before[key]
                left = self._keep_better(best, best_exposure, reached, candidates, left, references, own_mask, impostor_mask, goal)
            if self.search is not None and len(left):
                self._search(images, best, best_exposure, reached, left, references, own_mask, impostor_mask, goal, generator)
        return best

    def _keep_better(self, best, best_exposure, reached, candidates, left, references, own, impostors, goal) -> torch.Tensor:
        """Keep the candidates (for images ``left``) that beat the best so far; the images still short of their goal."""
        values, hit = self._assess(candidates, left, references, own, impostors, goal)
        better = (hit & ~reached[left]) | ((hit == reached[left]) & (values < best_exposure[left]))
        best[left[better]], best_exposure[left[better]], reached[left[better]] = candidates[better], values[better], hit[better]
        return left[~reached[left]]

    def _search(self, images, best, best_exposure, reached, left, references, own, impostors, goal, generator) -> None:
        """The rank-only search on the images ``left``, scored by their exposure (0 once the goal is reached)."""
        forward_before = self.forward_passes

        def score(candidates: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
            values, hit = self._assess(candidates, left[sub.to(left.device)], references, own, impostors, goal)
            return torch.where(hit, torch.zeros_like(values), values)

        device = None if generator is None else generator.device
        cpu_generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=device)))
        candidates, _ = self.search.search(images[left], score, cpu_generator)
        self.per_stage["square"]["images"] += len(left)
        self._keep_better(best, best_exposure, reached, candidates, left, references, own, impostors, goal)
        self.per_stage["square"]["forward_passes"] += self.forward_passes - forward_before


class AutoAttack:
    """``--attack auto``: the ensemble of the module docstring, run chunk by chunk over the attacked side(s)."""

    white_box = True
    stores_chunks = True

    def validate(self, setting: AttackSetting) -> None:
        """Raise InputError for options the ensemble fixes itself."""
        check_paper_objective(setting)
        if setting.goal != "untargeted":
            raise InputError("--attack auto is a non-targeted evaluation (its targeted stage picks its own targets): "
                             "expected --goal untargeted")  # fmt: skip
        if any(value is not None for value in (setting.step_size, setting.restarts, setting.target_pid)):
            raise InputError("--attack auto is parameter-free: it takes no --step-size, --restarts or --target-pid")
        if setting.schedule != "paper" or setting.attack_distance != "sqeuclidean":
            raise InputError("--attack auto fixes its objectives and schedule (drop --schedule and --attack-distance)")
        APGD(setting.eps_fraction, self.steps(setting), setting.norm)

    @staticmethod
    def steps(setting: AttackSetting) -> int:
        """Iterations of each APGD stage (and queries of the search)."""
        return AUTO_STEPS if setting.steps is None else setting.steps

    def run(self, context: AttackContext, setting: AttackSetting, sources: list[NamedModel], folder: Path | None) -> AttackOutcome:
        """The adversarial images of the setting, stored chunk by chunk (in ``folder`` when given)."""
        eps, steps = setting.eps_fraction, self.steps(setting)

        def make_attack(references: list[torch.Tensor], reference_slot: int) -> AutoEnsemble:
            reference = context.gallery if reference_slot == 0 else context.query
            thresholds = ranked_by = None
            if reference_slot == 1:  # gallery side: each reference query ranks the attacked images against its impostors
                ranked_by = [ImpostorDistances(queries, context.clean_features(named)[1], named.model.spec, context.query, context.gallery)
                             for queries, named in zip(references, sources)]  # fmt: skip
                thresholds = [ranked.kth(GOAL_RANK) for ranked in ranked_by]  # the margin's, from the same distances
            return AutoEnsemble(setting, sources, eps, steps, reference.pids.to(context.device), thresholds, ranked_by)

        return attack_sides(context, setting, sources, folder, make_attack, steps)
