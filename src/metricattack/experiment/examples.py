"""Ranking lists and adversarial examples of one attack setting, saved for the report."""

from __future__ import annotations

from pathlib import Path

import torch

from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.campaign import Campaign
from metricattack.data.writer import save_png

TOP_K = 10
MAX_PAIRS = 4


def one_per_identity(indices: list[int], pids: torch.Tensor, limit: int) -> list[int]:
    """Up to ``limit`` of ``indices``, at most one per identity, in order."""
    seen: set[int] = set()
    chosen = []
    for index in indices:
        pid = int(pids[index])
        if pid not in seen and len(chosen) < limit:
            seen.add(pid)
            chosen.append(index)
    return chosen


def example_queries(campaign: Campaign, outcome: AttackOutcome, count: int) -> torch.Tensor:
    """Up to ``count`` query indices the attack aimed at, chosen reproducibly from the campaign seed."""
    query_pids = campaign.query.pids
    if len(outcome.query_indices):
        candidates = outcome.query_indices
    elif outcome.setting.goal == "targeted":
        candidates = torch.isin(query_pids, outcome.gallery_targets).nonzero().flatten()
    else:
        candidates = torch.isin(query_pids, campaign.gallery.pids[outcome.gallery_indices]).nonzero().flatten()
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(campaign.seed))
    return candidates[order[:count]].sort().values


def write_examples(campaign: Campaign, outcome: AttackOutcome, out_dir: Path, count: int = 3) -> dict:
    """Save the images of ``count`` ranking lists (before / after) and adversarial pairs under
    ``out_dir/examples/<setting>/``; returns their description (paths relative to ``out_dir``)."""
    named = campaign.targets[0]
    folder = Path("examples") / outcome.setting.key
    attacked_query = dict.fromkeys(outcome.query_indices.tolist())  # ordered, with O(1) membership
    attacked_gallery = dict.fromkeys(outcome.gallery_indices.tolist())
    query_target = dict(zip(outcome.query_indices.tolist(), outcome.query_targets.tolist()))
    gallery_target = dict(zip(outcome.gallery_indices.tolist(), outcome.gallery_targets.tolist()))

    def image_path(side: str, index: int, adversarial: bool) -> str:
        images, attacked = (campaign.query, outcome.query) if side == "query" else (campaign.gallery, outcome.gallery)
        name = f"{side[0]}{index}{'_adv' if adversarial else ''}.png"
        path = out_dir / folder / name
        if not path.exists():
            save_png(attacked.image(index) if adversarial else images.read([index])[0].float().div(255), path)
        return str(folder / name)

    def entry(index: int, query_pid: int, target_pid: int | None, after: bool) -> dict:
        """One gallery item of a list; ``target``: of the target identity, or planted for this query's identity."""
        adversarial = after and index in attacked_gallery
        pid = int(campaign.gallery.pids[index])
        targeted = outcome.setting.goal == "targeted"
        return {
            "index": index,
            "pid": pid,
            "camid": int(campaign.gallery.camids[index]),
            "match": pid == query_pid,
            "attacked": adversarial,
            "target": targeted and (pid == target_pid or (adversarial and gallery_target.get(index) == query_pid)),
            "image": image_path("gallery", index, adversarial),
        }

    queries = example_queries(campaign, outcome, count)
    # The lists of the deployed pipeline (re-ranked when it re-ranks), as evaluated.
    clean_top = campaign.clean_evaluation(named)[1].top[queries, :TOP_K]
    attacked_top = outcome.rankings[named.name].top[queries, :TOP_K]
    lists = []
    for row, query in enumerate(queries.tolist()):
        pid = int(campaign.query.pids[query])
        target = query_target.get(query) if outcome.setting.goal == "targeted" else None
        lists.append(
            {
                "index": query,
                "pid": pid,
                "camid": int(campaign.query.camids[query]),
                "target_pid": target,
                "image": image_path("query", query, False),
                "attacked_image": image_path("query", query, query in attacked_query),
                "clean_top": [entry(i, pid, target, False) for i in clean_top[row].tolist() if i >= 0],
                "attacked_top": [entry(i, pid, target, True) for i in attacked_top[row].tolist() if i >= 0],
            }
        )
    pairs = []
    for side, attacked, targets in (("query", attacked_query, query_target), ("gallery", attacked_gallery, gallery_target)):
        images = campaign.query if side == "query" else campaign.gallery
        for index in one_per_identity(list(attacked), images.pids, MAX_PAIRS - len(pairs)):
            target = targets.get(index, -1)
            pairs.append(
                {
                    "side": side,
                    "pid": int(images.pids[index]),
                    "original": image_path(side, index, False),
                    "adversarial": image_path(side, index, True),
                    "target_pid": target if target >= 0 else None,
                }
            )
    example = {"target_model": named.name, "rankings": lists, "pairs": pairs}
    if getattr(outcome, "perturbation", None) is not None:  # a universal perturbation: one image for all
        example["perturbation"] = save_perturbation(outcome.perturbation, outcome.setting.eps, out_dir, folder)
    return example


def save_perturbation(delta: torch.Tensor, eps_pixels: float, out_dir: Path, folder: Path) -> dict:
    """Save a perturbation (3,H,W) twice: ``raw`` as 128 + 255 delta (lossless for deltas on the 8-bit grid,
    so it can be added back), and ``image`` scaled to the full range (0.5 + delta / (2 eps)) to look at."""
    raw, image = folder / "perturbation_raw.png", folder / "perturbation.png"
    save_png((128 + 255 * delta).clamp(0, 255) / 255, out_dir / raw)
    save_png((0.5 + delta / (2 * eps_pixels / 255)).clamp(0, 1), out_dir / image)
    return {"raw": str(raw), "image": str(image)}
