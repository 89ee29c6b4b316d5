"""One attack setting as a user states it (eps in pixels, side, goal...), with its checks and its key;
and a model with the name results are reported under."""

from __future__ import annotations

from dataclasses import dataclass

from metricattack.attacks.step_rule import StepRule
from metricattack.attacks.steps import SCHEDULES, STEP_RULES, build_step_rule, pixels_to_fraction
from metricattack.errors import InputError
from metricattack.evaluation.distance import DISTANCE_METRICS
from metricattack.models.reid import ReIDModel

SIDES = ("gallery", "query", "both")
GOALS = ("untargeted", "targeted")
ATTACK_LOSSES = ("paper", "margin")  # the step rules' objective: the paper's metric loss, or the ranking margin


@dataclass(frozen=True)
class AttackSetting:
    """One attack configuration; eps and step size in pixel units out of 255, as users type them.

    ``attack_distance`` is the distance the objective uses (default: the paper's squared euclidean,
    on L2-normalised features when the model normalises); ``schedule`` is ``paper`` (Bai et al.'s
    I-FGSM / MI-FGSM loop) or ``fast`` (decaying steps, each image dropped once its goal is reached);
    ``attack_loss`` is ``paper`` (the paper's metric losses) or ``margin`` (``attacks.margin.RankingMarginLoss``).
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
    attack_loss: str = "paper"

    def validate(self) -> None:
        """Raise InputError for a side, goal, target, distance, schedule or objective that is not one we know,
        or that do not go together; what an attack takes is checked by its kind (``registry.check_setting``)."""
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
        if self.attack_loss not in ATTACK_LOSSES:
            raise InputError(f"--attack-loss: unknown objective {self.attack_loss!r} (expected one of {', '.join(ATTACK_LOSSES)})")

    @property
    def eps_fraction(self) -> float:
        """eps as a fraction of 1: the one conversion from the pixels users type (InputError outside (0, 255])."""
        return pixels_to_fraction(self.eps, "--eps")

    @property
    def step_size_fraction(self) -> float | None:
        """The step size as a fraction of 1 (None: the attack's default)."""
        return None if self.step_size is None else pixels_to_fraction(self.step_size, "--step-size")

    def step_rule(self) -> StepRule:
        """The step rule, with eps and step size converted from pixels to fractions of 1."""
        options = {"norm": self.norm}
        if self.steps is not None:
            options["steps"] = self.steps
        if self.step_size is not None:
            options["step_size"] = self.step_size_fraction
        if self.restarts is not None:
            options["restarts"] = self.restarts
        if self.schedule != "paper":
            options["schedule"] = self.schedule
        return build_step_rule(self.attack, self.eps_fraction, **options)

    @property
    def counted_pairs(self) -> bool:
        """Whether the attack's masks hold only the pairs the ranking counts (no junk, no same-camera match)."""
        return self.attack_loss == "margin" or self.attack == "auto"

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
        if self.attack_loss != "paper":
            parts.append(self.attack_loss)
        return "-".join(parts)


@dataclass
class NamedModel:
    """A model with the name results are reported under."""

    name: str
    model: ReIDModel


def check_paper_objective(setting: AttackSetting) -> None:
    """InputError when an attack that is not a gradient step rule is given another objective than the paper's."""
    if setting.attack_loss != "paper":
        raise InputError(f"--attack-loss {setting.attack_loss} is for the gradient step rules ({', '.join(STEP_RULES)}), "
                         f"not --attack {setting.attack}")  # fmt: skip
