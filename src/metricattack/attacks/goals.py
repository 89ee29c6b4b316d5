"""When an adversarial image has done its job, so that an early-stopping step rule can stop iterating it.

Each test takes the distances (B,R) from B adversarial images to R fixed references (the other side's
clean features, under the distance the model is evaluated with) and returns (B,) bool. ``own_valid``
marks the references of the image's own identity that count in the ranking (not the same camera);
``impostors`` the references of other identities that count.
"""

from __future__ import annotations

import torch

GOAL_RANK = 100  # non-targeted goal: every true match pushed behind this many impostors


def kth_smallest(distances: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Per row of ``distances`` (R,N), the k-th smallest entry where ``mask`` is True (the largest if fewer
    than k; inf if none): behind fewer than k items means behind all of them."""
    masked = distances.masked_fill(~mask, float("inf"))
    smallest = masked.topk(min(k, masked.shape[1]), dim=1, largest=False).values  # (R,k)
    position = (mask.sum(dim=1).clamp(min=1, max=smallest.shape[1]) - 1)[:, None]
    return smallest.gather(1, position).squeeze(1)


def behind_thresholds(distances: torch.Tensor, own_valid: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Gallery side: every valid own reference r (a query) has the image farther than ``thresholds[r]`` (R,),
    its k-th nearest impostor (``kth_smallest`` of its clean distances), so it ranks the image below rank k."""
    return ((distances > thresholds[None, :]) | ~own_valid).all(dim=1)


def behind_impostors(distances: torch.Tensor, own_valid: torch.Tensor, impostors: torch.Tensor, k: int) -> torch.Tensor:
    """Query side: at least k impostors (all, if fewer) are nearer to the image than its nearest valid own reference."""
    nearest_own = distances.masked_fill(~own_valid, float("inf")).min(dim=1).values  # (B,)
    return ((distances < nearest_own[:, None]) & impostors).sum(dim=1) >= impostors.sum(dim=1).clamp(max=k)


def target_first(distances: torch.Tensor, target_mask: torch.Tensor, competitors: torch.Tensor) -> torch.Tensor:
    """Query side, targeted: the nearest target reference is nearer than every competitor (rank 1)."""
    nearest_target = distances.masked_fill(~target_mask, float("inf")).min(dim=1).values
    nearest_other = distances.masked_fill(~competitors, float("inf")).min(dim=1).values
    return nearest_target < nearest_other


def ahead_of_thresholds(distances: torch.Tensor, target_mask: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Gallery side, targeted: every target reference r (a query) has the image nearer than ``thresholds[r]``,
    its nearest clean gallery item, so the image is its rank 1."""
    return ((distances < thresholds[None, :]) | ~target_mask).all(dim=1)
