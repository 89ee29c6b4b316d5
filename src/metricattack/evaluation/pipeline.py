"""What a deployed re-ID system does after the model: flip averaging, query expansion, re-ranking.

A ``Pipeline`` names the steps. Flip averaging is an ``nn.Module`` around the model, so attacks
differentiate through it; query expansion and re-ranking act on features and distances and are
applied at evaluation time (the attack cannot follow re-ranking's neighbour sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from metricattack.errors import InputError
from metricattack.evaluation.distance import BlockedDistances, pairwise_distance
from metricattack.evaluation.ranking import ROW_BLOCK, RetrievalMetrics, _auto_chunk_size, evaluate_features, evaluate_ranking
from metricattack.evaluation.rows import DistanceRows
from metricattack.evaluation.rerank import K1, K2, LAMBDA, k_reciprocal_distances

PLAIN_NAME = "plain"


class ModelWrapper(nn.Module):
    """A module around ``self.model`` whose other attributes (``spec``, ``feature_dim``, ...) are the wrapped model's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # the model's mode, so eval_mode restoring the wrapper's mode restores the model's; not recursive: the
        # model's own submodule modes stay as they are
        self.training = model.training

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":  # not registered yet: no wrapped model to ask
                raise
            return getattr(self.model, name)


class FlipAverage(ModelWrapper):
    """features(x) = (f(x) + f(mirror(x))) / 2, mirror flipping the width; differentiable, for eval mode."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) -> (B,D)
        return (self.model(images) + self.model(images.flip(-1))) / 2


def with_flip(model: nn.Module, flip: bool) -> nn.Module:
    """``model`` with flip averaging (``flip``) or without it, whether or not it was wrapped before."""
    bare = model.model if isinstance(model, FlipAverage) else model
    return FlipAverage(bare) if flip else bare


def average_query_expansion(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    top_n: int,
    metric: str = "euclidean",
    normalize: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Average query expansion (Chum et al., ICCV 2007): q' = (q + sum_{n=1}^{N} g_(n)) / (N + 1).

    g_(1..N) are the query's ``top_n`` nearest gallery features under the model's distance, over the
    whole gallery (a deployed system does not know which images are junk or same-camera matches).
    With ``normalize`` the features are L2-normalised before averaging, as the distance sees them.
    Returns (Q,D); differentiable in the features for a fixed choice of neighbours.
    """
    if not 1 <= top_n <= len(gallery_features):
        raise InputError(f"--query-expansion {top_n}: expected between 1 and the gallery size {len(gallery_features)}")
    if normalize:
        query_features, gallery_features = F.normalize(query_features, dim=1), F.normalize(gallery_features, dim=1)
    chunk = _auto_chunk_size(chunk_size, len(gallery_features))
    expanded = []
    for start in range(0, len(query_features), chunk):
        queries = query_features[start : start + chunk]
        distances = pairwise_distance(queries.detach(), gallery_features.detach(), metric, normalize)
        nearest = distances.topk(top_n, dim=1, largest=False).indices  # (c,N)
        expanded.append((queries + gallery_features[nearest].sum(dim=1)) / (top_n + 1))
    return torch.cat(expanded)


@dataclass(frozen=True)
class Pipeline:
    """Post-model steps, applied in this order: flip averaging, query expansion over the top N, re-ranking."""

    flip: bool = False
    query_expansion: int = 0  # N; 0: none
    rerank: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool) or not isinstance(self.rerank, bool):
            raise InputError(f"--flip and --rerank are on/off switches, got {self.flip!r} and {self.rerank!r}")
        if isinstance(self.query_expansion, bool) or not isinstance(self.query_expansion, int) or self.query_expansion < 0:
            raise InputError(f"--query-expansion: expected a whole number N >= 0 (0: none), got {self.query_expansion!r}")

    @property
    def name(self) -> str:
        """``plain`` or the steps joined by '+', e.g. ``flip+qe5+rerank``."""
        parts = ["flip"] * self.flip + [f"qe{self.query_expansion}"] * (self.query_expansion > 0) + ["rerank"] * self.rerank
        return "+".join(parts) or PLAIN_NAME

    @classmethod
    def parse(cls, text: str) -> "Pipeline":
        """The pipeline a name describes: ``plain``, or ``flip``, ``qeN``, ``rerank`` joined by '+' in any order."""
        options: dict = {}
        for part in str(text).split("+") if text != PLAIN_NAME else []:
            if part in ("flip", "rerank") and part not in options:
                options[part] = True
            elif part.startswith("qe") and part[2:].isdigit() and int(part[2:]) > 0 and "query_expansion" not in options:
                options["query_expansion"] = int(part[2:])
            else:
                raise InputError(
                    f"--pipelines: cannot read {text!r} (expected plain, or flip, qeN, rerank joined by '+', e.g. flip+qe5+rerank)"
                )
        return cls(**options)

    def as_dict(self) -> dict:
        """A JSON-ready description, with the re-ranking parameters when it re-ranks."""
        described = {"name": self.name, "flip": self.flip, "query_expansion": self.query_expansion, "rerank": self.rerank}
        if self.rerank:
            described.update(k1=K1, k2=K2, lambda_value=LAMBDA)
        return described

    def expand(self, query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
        """The query features after query expansion (unchanged without it)."""
        if not self.query_expansion:
            return query_features
        return average_query_expansion(query_features, gallery_features, self.query_expansion, metric, normalize)

    def distances(self, query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
        """(Q,G) distances after query expansion and re-ranking, from features that are already flip-averaged or not."""
        query_features = self.expand(query_features, gallery_features, metric, normalize)
        if self.rerank:
            return k_reciprocal_distances(query_features, gallery_features, metric, normalize)
        return pairwise_distance(query_features, gallery_features, metric, normalize)

    def distance_rows(self, query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str, normalize: bool) -> DistanceRows:
        """The rows of ``distances`` on demand; without re-ranking the (Q,G) matrix is never held, and the rows
        are computed in fixed blocks (as ``evaluate_features`` does), so they do not depend on which are asked for."""
        if self.rerank:
            return DistanceRows.of_matrix(self.distances(query_features, gallery_features, metric, normalize))
        query_features = self.expand(query_features, gallery_features, metric, normalize)
        block = min(ROW_BLOCK, max(len(query_features), 1))
        blocked = BlockedDistances(query_features, gallery_features, metric, normalize, block)
        return DistanceRows(blocked.rows, len(query_features), len(gallery_features))

    def evaluate(
        self, query_features: torch.Tensor, gallery_features: torch.Tensor, labels: Sequence[torch.Tensor],
        metric: str, normalize: bool, average_precision: str = "standard",
    ) -> RetrievalMetrics:  # fmt: skip
        """Market-1501 metrics; ``labels``: query pids, gallery pids, query camids, gallery camids.

        Without re-ranking the distance rows are computed per chunk (no (Q,G) matrix is held)."""
        if self.rerank:
            distances = self.distances(query_features, gallery_features, metric, normalize)
            return evaluate_ranking(distances, *labels, average_precision=average_precision)
        query_features = self.expand(query_features, gallery_features, metric, normalize)
        return evaluate_features(
            query_features, gallery_features, *labels, metric=metric, normalize=normalize, average_precision=average_precision
        )


PLAIN = Pipeline()


def pipelines_from_options(flip: bool, query_expansion: int, rerank: bool, others: Sequence[str] | None) -> list[Pipeline]:
    """The deployed pipeline (from --flip, --query-expansion, --rerank) first, then those named by --pipelines,
    without repeats. The attack goes through the deployed pipeline's flip averaging."""
    if others is not None and (isinstance(others, str) or not isinstance(others, (list, tuple))):
        raise InputError(f"--pipelines: expected a list of pipeline names, got {others!r}")
    pipelines = [Pipeline(flip, query_expansion, rerank)] + [Pipeline.parse(name) for name in others or []]
    return list({pipeline.name: pipeline for pipeline in pipelines}.values())  # equal names: equal pipelines


def check_pipelines(pipelines: Sequence[Pipeline]) -> list[Pipeline]:
    """A non-empty list of distinct pipelines (the first is the deployed one)."""
    pipelines = list(pipelines)
    if not pipelines or len({p.name for p in pipelines}) != len(pipelines):
        raise InputError(f"expected at least one pipeline and no repeats, got {[p.name for p in pipelines]}")
    return pipelines
