"""What a deployed model expects that its weights do not say: input size, mean/std, distance, normalisation.

Our checkpoints and the registry know these; for any other model the user states them
(``--input-size``, ``--mean``, ``--std``, ``--distance``, ``--normalize``, or the same keys in YAML).
Every value is optional: ``None`` keeps the model's own (or the source's default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from metricattack.errors import InputError
from metricattack.evaluation.distance import DISTANCE_METRICS


def _numbers(value: object, count: int, kind: type, label: str, expected: str, positive: bool = True) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == count and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        numbers = tuple(kind(v) for v in value)
        if not positive or all(v > 0 for v in numbers):
            return numbers
    raise InputError(f"{label}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class ModelOptions:
    """User-stated preprocessing and distance of a model; ``None`` fields keep the model's own."""

    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    distance: str | None = None
    normalize: bool | None = None

    @classmethod
    def from_mapping(cls, values: Mapping, where: str = "") -> "ModelOptions":
        """Validate the option keys present in ``values`` (CLI namespace or YAML); ``where`` prefixes errors."""
        prefix = f"{where}: " if where else "--"
        distance, normalize = values.get("distance"), values.get("normalize")
        if distance is not None and distance not in DISTANCE_METRICS:
            raise InputError(f"{prefix}distance: expected one of {', '.join(DISTANCE_METRICS)}, got {distance!r}")
        if normalize is not None and not isinstance(normalize, bool):
            raise InputError(f"{prefix}normalize: expected true or false, got {normalize!r}")
        return cls(
            input_size=_numbers(values.get("input_size"), 2, int, f"{prefix}input-size", "two positive integers H W"),
            mean=_numbers(values.get("mean"), 3, float, f"{prefix}mean", "three numbers (R G B, images in [0,1])", positive=False),
            std=_numbers(values.get("std"), 3, float, f"{prefix}std", "three positive numbers (R G B)"),
            distance=distance,
            normalize=normalize,
        )

    def spec_values(self) -> dict:
        """The stated values under the model spec's names (``distance`` is the spec's ``metric``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if "distance" in values:
            values["metric"] = values.pop("distance")
        return values


OPTION_KEYS = tuple(f.name for f in fields(ModelOptions))
