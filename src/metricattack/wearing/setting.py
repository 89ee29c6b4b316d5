"""One wearable-pattern attack setting: what is optimised, on which cameras, how long, under which
constraints; its checks (one-line InputErrors naming the option) and its key for resuming."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from metricattack.data.synthetic.texture import AREAS
from metricattack.errors import InputError

GOALS = ("evade", "impersonate")


def default_cameras(num_cameras: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(training, held-out) 1-based cameras: the first half to optimise on, the rest held out (3 and 3 of 6)."""
    half = num_cameras // 2
    return tuple(range(1, half + 1)), tuple(range(half + 1, num_cameras + 1))


@dataclass(frozen=True)
class WearSetting:
    """The attack's settings.

    goal: evade (the wearer's images stop matching each other) or impersonate (they match a target's);
    area: where the print sits on the top (``AREAS``: patch on chest and back, or the whole top);
    train_cameras / test_cameras: 1-based cameras optimised on / held out for the evaluation;
    steps, renders: Adam steps, and fresh renders of the wearer per step (expectation over transformation);
    lr: Adam's starting learning rate on W (cosine decay to 0), the texture being T = sigmoid(W);
    tv_weight, print_weight: weights of the total variation and the non-printability in the loss;
    texture_size: (h, w) texels of the print; eval_renders: queries per camera in the evaluation;
    random_cameras: renders per step through new random cameras besides the ``renders`` (camera randomisation).
    """

    goal: str = "evade"
    area: str = "patch"
    train_cameras: tuple[int, ...] = (1, 2, 3)
    test_cameras: tuple[int, ...] = (4, 5, 6)
    steps: int = 150
    renders: int = 16
    lr: float = 0.3
    tv_weight: float = 0.05
    print_weight: float = 0.1
    texture_size: tuple[int, int] = (8, 8)
    eval_renders: int = 4
    references: int = 12  # clean renders of the wearer in the training cameras (the loss's references)
    random_cameras: int = 8

    def validate(self, num_cameras: int) -> None:
        """InputError naming the first option out of range, for data with ``num_cameras`` cameras."""
        if self.goal not in GOALS:
            raise InputError(f"--goal: expected one of {', '.join(GOALS)}, got {self.goal!r}")
        if self.area not in AREAS:
            raise InputError(f"--area: expected one of {', '.join(AREAS)}, got {self.area!r}")
        for option, cameras in (("--train-cameras", self.train_cameras), ("--test-cameras", self.test_cameras)):
            if not cameras:
                what = "held-out cameras to evaluate on" if option == "--test-cameras" else "cameras to optimise on"
                raise InputError(f"{option}: expected at least one camera ({what}), got none")
            if any(not 1 <= c <= num_cameras for c in cameras) or len(set(cameras)) != len(cameras):
                raise InputError(f"{option}: expected distinct cameras from 1 to {num_cameras}, got {list(cameras)}")
        if self.goal == "evade" and len(self.test_cameras) < 2:
            raise InputError(f"--test-cameras: evading is scored across held-out cameras: expected at least 2, got {list(self.test_cameras)}")
        shared = sorted(set(self.train_cameras) & set(self.test_cameras))
        if shared:
            raise InputError(f"--test-cameras: held-out cameras must not be optimised on, but {shared} are in --train-cameras")
        for option, value in (("--steps", self.steps), ("--renders", self.renders), ("--eval-renders", self.eval_renders),
                              ("references", self.references)):  # fmt: skip
            if value < 1:
                raise InputError(f"{option}: expected an integer >= 1, got {value}")
        if self.random_cameras < 0:
            raise InputError(f"--random-cameras: expected an integer >= 0, got {self.random_cameras}")
        if self.renders < len(self.train_cameras):
            raise InputError(f"--renders: expected at least one per training camera ({len(self.train_cameras)}), got {self.renders}")
        for option, value in (("--lr", self.lr), ("--tv-weight", self.tv_weight), ("--print-weight", self.print_weight)):
            if not value >= 0 or value == float("inf"):
                raise InputError(f"{option}: expected a finite number >= 0, got {value}")
        if len(self.texture_size) != 2 or min(self.texture_size) < 2:
            raise InputError(f"--texture-size: expected two sizes >= 2 (h w), got {list(self.texture_size)}")

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def key(self) -> str:
        """A short hash of every setting: a resumed run must have the same one."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
