"""One setting of a tracking run: the clean tracker, motion only, or an attack on the association with its
step rule, size, objective, frame budget and source model; and its key."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from metricattack.attacks.steps import STEP_RULES
from metricattack.errors import InputError
from metricattack.tracking.association import LOSSES

GOALS = ("clean", "motion-only", "untargeted", "switch")
BUDGETS = ("every", "crossings")  # and "every:N"


def check_budget(budget: str) -> int:
    """The frame stride of a budget (``every`` 1, ``every:N`` N; ``crossings`` 0), or InputError."""
    if budget == "every":
        return 1
    if budget == "crossings":
        return 0
    head, _, stride = budget.partition(":")
    if head == "every" and stride.isdigit() and int(stride) >= 1:
        return int(stride)
    raise InputError(f"--budget: expected every, every:N (N >= 1) or crossings, got {budget!r}")


@dataclass(frozen=True)
class TrackSetting:
    """A setting; ``eps`` in pixels out of 255 of the frame, as the user typed it (converted in ``eps_fraction``).

    ``budget``: the frames attacked, ``every``, ``every:N`` (every N-th frame) or ``crossings`` (the
    ``frames_per_pair`` frames around each crossing pair's closest approach); a ``switch`` always spends
    ``frames_per_pair`` frames per pair. ``source``: the model the attacker uses (None: the tracker's own,
    white-box on the tracker's state; otherwise a transfer attack through a mirror tracker).
    """

    goal: str
    attack: str = "ifgsm"
    eps: float = 8.0
    steps: int | None = None
    loss: str = "paper"
    budget: str = "every"
    frames_per_pair: int = 10
    source: str | None = None

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise InputError(f"tracking goal must be one of {', '.join(GOALS)}, got {self.goal!r}")
        if not self.attacks:
            return
        if self.attack not in STEP_RULES:
            raise InputError(f"--attack: unknown attack {self.attack!r} (expected one of {', '.join(STEP_RULES)})")
        if not 0 <= self.eps <= 255:
            raise InputError(f"--eps must be in [0, 255] (pixels out of 255), got {self.eps:g}")
        if self.steps is not None and (self.steps < 1 or int(self.steps) != self.steps):
            raise InputError(f"--steps must be an integer >= 1, got {self.steps}")
        if self.loss not in LOSSES:
            raise InputError(f"--attack-loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        check_budget(self.budget)
        if self.frames_per_pair < 1 or int(self.frames_per_pair) != self.frames_per_pair:
            raise InputError(f"--frames-per-pair must be an integer >= 1, got {self.frames_per_pair}")

    @property
    def attacks(self) -> bool:
        """Whether the setting perturbs frames."""
        return self.goal in ("untargeted", "switch")

    @property
    def eps_fraction(self) -> float:
        """eps as a fraction of 1."""
        return self.eps / 255

    @property
    def key(self) -> str:
        """A short unique name: ``clean``, ``motion-only``, or e.g. ``untargeted-ifgsm-eps8-every``."""
        if not self.attacks:
            return self.goal
        parts = [self.goal, self.attack, f"eps{self.eps:g}"]
        if self.steps is not None:
            parts.append(f"steps{self.steps}")
        if self.loss != "paper":
            parts.append(self.loss)
        parts.append(f"pair{self.frames_per_pair}" if self.goal == "switch" else self.budget.replace(":", ""))
        if self.goal != "switch" and self.budget == "crossings":
            parts[-1] = f"crossings{self.frames_per_pair}"
        if self.source is not None:
            parts.append("from-" + self.source.replace(":", "-").replace("/", "-"))
        return "-".join(parts)

    def to_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


DEFAULT_PLAN = (
    TrackSetting("clean"),
    TrackSetting("motion-only"),
    TrackSetting("untargeted", "ifgsm", 8.0, steps=20, loss="neighbour", budget="every"),
    TrackSetting("switch", "ifgsm", 8.0, steps=20, frames_per_pair=10),
)
