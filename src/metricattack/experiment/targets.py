"""Targeted attacks: which identity each attacked identity is pulled toward, and how often it got there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from metricattack.errors import InputError
from metricattack.evaluation.ranking import valid_mask
from metricattack.evaluation.rows import DistanceRows
from metricattack.experiment.outcome import AttackOutcome

if TYPE_CHECKING:
    from metricattack.experiment.campaign import Campaign


def assign_targets(
    pids: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator, fixed: int | None = None
) -> dict[int, int]:
    """For each identity in ``pids``, a target identity from ``candidates`` other than itself.

    ``fixed`` targets every identity at that pid (identities equal to it get none). Otherwise each
    identity draws uniformly at random, reproducibly for a given generator state.
    """
    identities = sorted(set(pids.tolist()))
    pool = sorted(set(candidates.tolist()) - {0, -1})
    if fixed is not None:
        if fixed not in pool:
            raise InputError(f"--target-pid {fixed}: no such identity among the reference images (they hold {describe_identities(pool)})")
        return {pid: fixed for pid in identities if pid != fixed}
    targets = {}
    for pid in identities:
        options = [c for c in pool if c != pid]
        if options:
            targets[pid] = options[int(torch.randint(len(options), (1,), generator=generator))]
    return targets


def describe_identities(pids: list[int], shown: int = 4) -> str:
    """Sorted distinct ``pids`` as their count and runs of consecutive ids, e.g. '200 identities: 301-500'
    (the first ``shown`` runs, then '...')."""
    if not pids:
        return "no identity"
    runs: list[list[int]] = []
    for pid in pids:
        if runs and pid == runs[-1][1] + 1:
            runs[-1][1] = pid
        else:
            runs.append([pid, pid])
    spans = [str(first) if first == last else f"{first}-{last}" for first, last in runs[:shown]]
    return f"{len(pids)} identit{'y' if len(pids) == 1 else 'ies'}: {', '.join(spans)}{', ...' if len(runs) > shown else ''}"


def first_hit_ranks(distances: torch.Tensor, valid: torch.Tensor, hits: torch.Tensor) -> torch.Tensor:
    """Per row of ``distances`` (n,G), the 1-based rank among valid items of the first valid hit
    (ties in gallery order; G + 1 when no valid hit)."""
    order = distances.argsort(dim=1, stable=True)
    valid_sorted = valid.gather(1, order)
    positions = valid_sorted.cumsum(dim=1)  # rank of each valid item in sorted order
    found = (hits & valid).gather(1, order)
    missing = torch.full_like(positions, distances.shape[1] + 1)
    return torch.where(found, positions, missing).min(dim=1).values.float()


def target_success(campaign: Campaign, outcome: AttackOutcome, distances: DistanceRows, clean_distances: DistanceRows | None = None) -> dict:
    """Targeted success at rank 1, 5 and 10, and the mean rank of the nearest target image after
    (and, given the clean distances (Q,G), before) the attack.

    Query side (and both): an attacked query succeeds when an image of its target identity is
    among its top k. Gallery side: a query of a target identity succeeds when a gallery image
    planted for it (attacked toward it) is among its top k. Ranks count valid gallery items only.
    """
    query_pids, gallery_pids, query_camids, gallery_camids = campaign.labels(campaign.device)
    if len(outcome.query_indices):
        queries, targets = outcome.query_indices.to(campaign.device), outcome.query_targets.to(campaign.device)
    else:
        planted = torch.full_like(gallery_pids, -1)
        planted[outcome.gallery_indices.to(campaign.device)] = outcome.gallery_targets.to(campaign.device)
        queries = torch.isin(query_pids, planted[planted >= 0]).nonzero().flatten()

    def hits(chosen: torch.Tensor) -> torch.Tensor:  # (n,G) for the queries at positions ``chosen`` of ``queries``
        if len(outcome.query_indices):
            return gallery_pids[None, :] == targets[chosen, None]
        return planted[None, :] == query_pids[queries[chosen], None]

    result = {}
    for name, rows in (("after", distances), ("before", clean_distances)):
        if rows is None:
            continue
        ranks = []
        for start, stop in rows.ranges():  # only the rows of the queries that count, a chunk at a time
            chosen = ((queries >= start) & (queries < stop)).nonzero().flatten()
            if len(chosen):
                picked = queries[chosen]
                valid = valid_mask(query_pids[picked], gallery_pids, query_camids[picked], gallery_camids)
                ranks.append(first_hit_ranks(rows(start, stop)[picked - start], valid, hits(chosen)))
        ranks = torch.cat(ranks) if ranks else torch.zeros(0)
        if name == "after":
            result.update({f"target_success_rank{k}": (ranks <= k).float().mean().nan_to_num().item() for k in (1, 5, 10)})
        result[f"target_rank_{name}"] = ranks.mean().item() if len(ranks) else float("nan")
    return result
