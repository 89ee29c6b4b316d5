"""A campaign's options besides its data and models: how images are read, and the evaluation protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metricattack.evaluation.pipeline import PLAIN, Pipeline, check_pipelines


@dataclass(frozen=True)
class Reading:
    """How images are read: ``batch_size`` per model pass, resized to ``image_size`` (H,W) when given, by
    ``workers`` processes, ``chunk_size`` images per stored chunk and per read of clean images (rounded up to a
    whole number of batches by the campaign), with progress bars or not."""

    batch_size: int = 64
    image_size: tuple[int, int] | None = None
    workers: int = 0
    chunk_size: int = 1024
    progress: bool = True

    @property
    def whole_chunk_size(self) -> int:
        """``chunk_size`` rounded up to whole batches, so every image meets the same batch whatever the chunk
        size (batched kernels round by batch shape)."""
        return -(-self.chunk_size // self.batch_size) * self.batch_size


@dataclass(frozen=True)
class EvaluationProtocol:
    """How an attack is evaluated: the ``pipelines`` (the first is the deployed one), the ``average_precision``
    ("standard" or "trapezoid"), attacked images rounded to 8 bits (``quantize_images``) as a file would hold
    them, and the ``seed`` of every random choice (targets, random starts, examples)."""

    pipelines: Sequence[Pipeline] = (PLAIN,)
    average_precision: str = "standard"
    quantize_images: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pipelines", tuple(check_pipelines(self.pipelines)))
