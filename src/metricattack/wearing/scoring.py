"""Scoring a print on re-rendered images: the wearer's renders by the numpy renderer (not the compositor),
as queries and as gallery images among the data's gallery, ranked under the Market-1501 protocol.

- own match (evading): rank-1, mAP and mean first-match rank of the wearer's renders against his other
  renders (other cameras; same-camera ones removed by the protocol) among everyone else's gallery images;
- impersonation: the same ranking with the queries labelled as the target: rank-k is then the share of the
  wearer's queries with one of the target's ordinary gallery images (other cameras) in their first k.
"""

from __future__ import annotations

import torch
from torch import nn

from metricattack.evaluation.damage import match_rank_stats, summarize_ranking
from metricattack.evaluation.distance import pairwise_distance
from metricattack.evaluation.ranking import evaluate_ranking
from metricattack.models.features import FeatureSet, features_of
from metricattack.wearing.wearers import without

BATCH = 64


def render_features(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Features (N, D) of rendered images (N, 3, H, W) in [0, 1], on the CPU."""
    return torch.cat([features_of(model, images[i : i + BATCH].to(device)).float().cpu() for i in range(0, len(images), BATCH)])


def score_renders(
    features: torch.Tensor, cameras: torch.Tensor, pid: int, gallery: FeatureSet, metric: str, normalize: bool,
    target: int | None = None,
) -> dict[str, float | None]:
    """Retrieval of the wearer ``pid``'s renders (features (N, D), 0-based ``cameras`` (N,)) as queries against
    themselves and ``gallery`` without his images; with ``target``, also the share of queries with a target
    image at rank 1 and within rank 5."""
    others = without(gallery, pid)
    labels = torch.full((len(features),), pid)
    gallery_features = torch.cat([features, others.features])
    gallery_pids, gallery_cameras = torch.cat([labels, others.pids]), torch.cat([cameras, others.camids])
    distances = pairwise_distance(features, gallery_features, metric, normalize)
    scores: dict[str, float | None] = {"rank1": None, "mAP": None, "match_rank": None}  # one camera: no cross-camera match
    if len(cameras.unique()) > 1:
        own = evaluate_ranking(distances, labels, gallery_pids, cameras, gallery_cameras)
        ranks = match_rank_stats(summarize_ranking(distances, labels, gallery_pids, cameras, gallery_cameras))
        scores = {"rank1": own.rank(1), "mAP": own.mAP, "match_rank": ranks["match_rank_mean"]}
    target_cameras = others.camids[others.pids == target] if target is not None else None
    if target_cameras is not None and not (cameras[:, None] != target_cameras[None, :]).any():
        scores |= {"target_rank1": None, "target_rank5": None}  # no query has a target image in another camera
    elif target is not None:
        # Labelled as the target, the wearer's renders in the query's own camera (itself included) would count as
        # others' images: put them last, as the protocol removes a person's images in the query's camera.
        same_camera = torch.zeros_like(distances, dtype=torch.bool)
        same_camera[:, : len(features)] = cameras[:, None] == cameras[None, :]
        posing_distances = distances.masked_fill(same_camera, float("inf"))
        posing = evaluate_ranking(posing_distances, torch.full_like(labels, target), gallery_pids, cameras, gallery_cameras)
        scores |= {"target_rank1": posing.rank(1), "target_rank5": posing.rank(5)}
    return scores
