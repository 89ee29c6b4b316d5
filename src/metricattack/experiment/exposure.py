"""How visible an attacked image's true matches remain: one number per image, to choose between attacks.

The ``auto`` ensemble keeps, per image, the most damaging of its stages' results; their objectives differ,
so they are compared on this one rank-based measure, lower = more damage:

- query side (the image ranks the references): its average precision over the references, with its own
  identity's counted references (``own_valid``: not the same camera) as positives and ``impostors``
  (other identities, no junk) as negatives, exactly the AP it gets in the evaluation (mAP is their mean);
- gallery side (each reference ranks the image): the mean over its counted own references r of
  1 / (1 + the number of r's impostors that r ranks ahead of the image), r's impostor distances fixed
  (``ImpostorDistances``): its reciprocal rank among impostors, the part of r's AP the image holds up.
"""

from __future__ import annotations

import torch

from metricattack.evaluation.pipeline import PLAIN
from metricattack.evaluation.ranking import valid_mask


def average_precision(distances: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per row of ``distances`` (B,R), the AP of ranking the references by distance with ``positives`` (B,R)
    relevant and ``negatives`` (B,R) irrelevant (the rest are left out); 0 for a row without positives."""
    order = distances.masked_fill(~(positives | negatives), float("inf")).argsort(dim=1, stable=True)
    relevant = positives.gather(1, order).to(distances.dtype)
    counted = (positives | negatives).gather(1, order).to(distances.dtype)
    found, ranks = relevant.cumsum(dim=1), counted.cumsum(dim=1)
    precision = torch.where(relevant > 0, found / ranks.clamp(min=1), torch.zeros_like(found))
    return precision.sum(dim=1) / relevant.sum(dim=1).clamp(min=1)


class ImpostorDistances:
    """Gallery side: each reference's (a query's) distances to its counted impostors in the clean gallery, sorted,
    so that the rank a reference gives an image among its impostors is one ``searchsorted``."""

    def __init__(self, references: torch.Tensor, gallery_features: torch.Tensor, spec, query, gallery) -> None:
        device = references.device
        query_pids, query_camids = query.pids.to(device), query.camids.to(device)
        gallery_pids, gallery_camids = gallery.pids.to(device), gallery.camids.to(device)
        rows = []
        for start, stop, distances in PLAIN.distance_rows(references, gallery_features, spec.metric, spec.normalize).chunks():
            pids = query_pids[start:stop]
            impostors = valid_mask(pids, gallery_pids, query_camids[start:stop], gallery_camids) & (pids[:, None] != gallery_pids[None, :])
            rows.append(distances.masked_fill(~impostors, float("inf")).sort(dim=1).values)
        self.sorted = torch.cat(rows) if rows else torch.zeros(0, len(gallery_pids), device=device)  # (R,G), inf-padded

    def kth(self, k: int) -> torch.Tensor:
        """Per reference (R,), the distance to its k-th nearest impostor (the farthest if fewer; inf if none), as
        ``goals.ranking_thresholds`` gives it: the distance a match must exceed to be ranked behind k impostors."""
        nearest = self.sorted[:, :k]  # inf past the last impostor
        position = torch.isfinite(nearest).sum(dim=1).clamp(min=1) - 1
        return nearest.gather(1, position[:, None]).squeeze(1)

    def reciprocal_ranks(self, distances: torch.Tensor, own_valid: torch.Tensor) -> torch.Tensor:
        """Per image (B,), the mean over its counted own references of 1 / (1 + impostors ranked ahead of it);
        0 for an image without any."""
        images, references = own_valid.nonzero(as_tuple=True)
        ahead = torch.searchsorted(self.sorted[references], distances[images, references][:, None].contiguous()).squeeze(1)
        totals = torch.zeros(len(distances), dtype=distances.dtype, device=distances.device)
        totals.index_add_(0, images, 1 / (1 + ahead.to(distances.dtype)))
        return totals / own_valid.sum(dim=1).clamp(min=1)


def exposure(distances: torch.Tensor, own_valid: torch.Tensor, impostors: torch.Tensor, ranked_by: ImpostorDistances | None) -> torch.Tensor:
    """Per image (B,), how visible its true matches remain (see the module docstring): ``ranked_by`` None on the
    query side, the references' ``ImpostorDistances`` on the gallery side. ``distances`` (B,R) are the model's."""
    if ranked_by is None:
        return average_precision(distances, own_valid, impostors)
    return ranked_by.reciprocal_ranks(distances, own_valid)
