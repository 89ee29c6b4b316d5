"""Step rules by name: FGSM, I-FGSM, MI-FGSM and PGD as settings of one loop (``step_rule.StepRule``),
APGD (``apgd``), the registry ``STEP_RULES`` and ``build_step_rule``.

They know nothing about re-ID: ``run(images, objective)`` takes any objective returning one value per
image (B,) to maximise. eps and step sizes are fractions of 1; ``pixels_to_fraction`` converts the pixel
units (out of 255) users type, once, at the boundary.
"""

from __future__ import annotations

import inspect

from metricattack.attacks.apgd import APGD
from metricattack.attacks.norms import NORMS
from metricattack.attacks.step_rule import StepRule, check_steps
from metricattack.errors import InputError

__all__ = ["APGD", "FGSM", "IFGSM", "MIFGSM", "NORMS", "PGD", "SCHEDULES", "STEP_RULES", "StepRule", "build_step_rule",
           "default_iterations", "pixels_to_fraction"]


def pixels_to_fraction(value: float, option: str) -> float:
    """Convert a size in pixel units out of 255 to a fraction of 1, checking it is in (0, 255]."""
    if not 0 < value <= 255:
        raise InputError(f"{option} must be in (0, 255] pixel units (out of 255), got {value:g}")
    return value / 255


def default_iterations(eps_pixels: float) -> int:
    """Kurakin et al.'s iteration count, as in the paper's code: int(min(eps + 4, 1.25 eps)), at least 1.

    ``eps_pixels`` is in pixel units out of 255; a tiny tolerance absorbs the float error of
    eps / 255 * 255 so that, e.g., 8 pixels gives 10 and not 9.
    """
    return max(1, int(min(eps_pixels + 4, 1.25 * eps_pixels) + 1e-9))


SCHEDULES = ("paper", "fast")
FAST_STEPS = 5  # the fast schedule's default: steps of eps, 4/5 eps, ..., 1/5 eps


def _schedule(schedule: str, eps: float, step_size: float | None, steps: int | None) -> dict:
    """StepRule options of a named I-FGSM / MI-FGSM schedule; an explicit step size or count wins.

    paper: Bai et al.'s loop, int(min(eps + 4, 1.25 eps)) constant steps of 1/255 (eps in pixels), every
    image to the end. fast: FAST_STEPS steps decaying linearly from eps to eps / steps, each image
    dropped once its goal (given by the caller) is reached.
    """
    if schedule == "paper":
        return {"step_size": 1 / 255 if step_size is None else step_size,
                "steps": default_iterations(eps * 255) if steps is None else steps}
    if schedule == "fast":
        return {"step_size": eps if step_size is None else step_size, "steps": FAST_STEPS if steps is None else steps,
                "decay": "linear", "early_stop": True}
    raise InputError(f"--schedule: unknown schedule {schedule!r} (expected one of {', '.join(SCHEDULES)})")


class FGSM(StepRule):
    """Fast gradient (sign) method (Goodfellow et al., 2015): one step of size eps from the clean images.

    Images in [0,1]; eps is a fraction of 1. Under L2 the step is eps * grad / ||grad||_2.
    """

    def __init__(self, eps: float, norm: str = "linf") -> None:
        super().__init__(eps, step_size=eps, steps=1, norm=norm)


class IFGSM(StepRule):
    """Iterative FGSM (Kurakin et al., 2017). ``schedule="paper"`` (Bai et al.): steps of 1/255,
    default_iterations(eps) of them; ``"fast"``: FAST_STEPS steps decaying from eps, with early stopping.

    Images in [0,1]; eps and step_size are fractions of 1.
    """

    def __init__(
        self, eps: float, step_size: float | None = None, steps: int | None = None, norm: str = "linf", schedule: str = "paper"
    ) -> None:
        super().__init__(eps, norm=norm, **_schedule(schedule, eps, step_size, steps))


class MIFGSM(StepRule):
    """Momentum iterative FGSM (Dong et al., 2018): I-FGSM following g_t = m g_{t-1} + grad_t / mean(|grad_t|).

    Images in [0,1]; eps and step_size are fractions of 1; momentum m = 1 as in Bai et al.; schedules as IFGSM's.
    """

    def __init__(
        self,
        eps: float,
        step_size: float | None = None,
        steps: int | None = None,
        momentum: float = 1.0,
        norm: str = "linf",
        schedule: str = "paper",
    ) -> None:
        super().__init__(eps, norm=norm, momentum=momentum, **_schedule(schedule, eps, step_size, steps))


class PGD(StepRule):
    """Projected gradient descent (Madry et al., 2018): random start, steps of 2.5 eps / steps by default.

    Images in [0,1]; eps and step_size are fractions of 1. ``restarts`` random starts; per image the
    best iterate over all steps and restarts is kept (``keep_best``), as robustness evaluations do.
    """

    def __init__(
        self,
        eps: float,
        step_size: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        restarts: int = 1,
        keep_best: bool = True,
    ) -> None:
        check_steps(steps)
        step_size = 2.5 * eps / steps if step_size is None else step_size
        super().__init__(eps, step_size, steps, norm, random_start, restarts=restarts, keep_best=keep_best)


STEP_RULES: dict[str, type[StepRule]] = {"fgsm": FGSM, "ifgsm": IFGSM, "mifgsm": MIFGSM, "pgd": PGD, "apgd": APGD}


def _flags(names: list[str]) -> str:
    """Option names as command-line flags: ["step_size"] -> "--step-size"."""
    return ", ".join("--" + name.replace("_", "-") for name in names)


def build_step_rule(name: str, eps: float, **options) -> StepRule:
    """The step rule registered as ``name`` with eps (a fraction of 1) and its own keyword options."""
    if name not in STEP_RULES:
        raise InputError(f"--attack: unknown attack {name!r} (expected one of {', '.join(STEP_RULES)})")
    parameters = inspect.signature(STEP_RULES[name]).parameters.values()  # keyword-only ones are not user options
    accepted = [p.name for p in parameters if p.name != "eps" and p.kind is not inspect.Parameter.KEYWORD_ONLY]
    extra = sorted(set(options) - set(accepted))
    if extra:
        raise InputError(f"--attack {name} does not take {_flags(extra)} (it takes {_flags(accepted)})")
    return STEP_RULES[name](eps, **options)
