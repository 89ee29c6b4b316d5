"""A query-limited black-box attack that sees only what a deployed re-ID system returns: a ranked list.

The system (``RankingOracle``) holds the model and the gallery; for each submitted query image it
returns the identities of its top-k gallery images, computed without autograd, and counts one query.
The attacker never reads features, distances or gradients.

The attack is Square Attack's L∞ random search (Andriushchenko, Croce, Flammarion and Hein, "Square
Attack: a query-efficient black-box adversarial attack via random search", ECCV 2020, Algorithms 1 and 2)
with the score replaced by a rank-based objective computed from the returned list alone, in the spirit
of QAIR's relevance loss on top-k results (Li et al., CVPR 2021). For a query of identity y with
returned identities p_1..p_k, the attacker minimises the discounted count of true matches

    score = sum_{r=1..k} [p_r == y] / log2(r + 1)

(0 once no image of y is in the top k). It starts from random vertical stripes of +-eps, then each
iteration redraws one square of side h (a fraction p of the image area, halved on Square Attack's
schedule of iterations) to +-eps per channel and keeps it when the score does not rise (ties are
kept so the search moves across the score's plateaus). Every candidate costs one query; an image stops
once its score is 0 or its budget is spent. The schedule depends on the iteration number only, so a
run with budget b is the first b queries of a run with a larger budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from metricattack.errors import InputError
from metricattack.evaluation import pairwise_distance

DEFAULT_BUDGET = 1000
TOP_K = 10
P_INIT = 0.1  # share of the image area redrawn at first (Square Attack uses 0.05 on ImageNet, larger on small images)
HALVE_AT = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # Square Attack's iterations where p halves


class RankingOracle:
    """A deployed system: query images in, the identities of the top-k gallery images out; nothing else.

    Ranking uses the model's own distance over the whole gallery; outputs are integer pid tensors made
    under ``torch.inference_mode`` (no autograd graph reaches the model). ``queries_used`` counts images.
    """

    def __init__(self, model: torch.nn.Module, gallery_features: torch.Tensor, gallery_pids: torch.Tensor,
                 top_k: int = TOP_K) -> None:  # fmt: skip
        self._model = model
        self._gallery_features = gallery_features.detach()  # (G,D)
        self._gallery_pids = gallery_pids.detach().cpu()
        self.top_k = min(top_k, len(gallery_pids))
        self.queries_used = 0

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The top-k gallery identities (B,k) int64 on the CPU for a batch of images (B,3,H,W) in [0,1]."""
        spec = self._model.spec
        features = self._model(images.detach().to(self._gallery_features.device))
        distances = pairwise_distance(features, self._gallery_features, metric=spec.metric, normalize=spec.normalize)
        self.queries_used += len(images)
        return self._gallery_pids[distances.topk(self.top_k, dim=1, largest=False).indices.cpu()]


def rank_score(returned_pids: torch.Tensor, true_pids: torch.Tensor) -> torch.Tensor:
    """The discounted count of true matches in each returned list: sum_r [p_r == y] / log2(r + 1), (B,)."""
    discounts = 1 / torch.log2(torch.arange(2, returned_pids.shape[1] + 2, dtype=torch.float64))
    return ((returned_pids == true_pids[:, None]).double() * discounts).sum(dim=1)


def square_side(iteration: int, height: int, width: int, p_init: float = P_INIT) -> int:
    """Side of the square redrawn at ``iteration``: sqrt(p * H * W) with p halved at each of ``HALVE_AT`` passed."""
    p = p_init / 2 ** sum(iteration > mark for mark in HALVE_AT)
    return max(1, min(height, width, round(math.sqrt(p * height * width))))


class SquareRankAttack:
    """Square Attack (L∞) on the rank score of a ranking-only system; ``budget`` queries per image.

    Images in [0,1]; eps is a fraction of 1. Budget 0 returns the images unchanged.
    """

    def __init__(self, eps: float, budget: int = DEFAULT_BUDGET, p_init: float = P_INIT) -> None:
        if not 0 < eps <= 1:
            raise InputError(f"eps must be in (0, 1] as a fraction of 1 (pixels / 255), got {eps:g}")
        if budget < 0 or int(budget) != budget:
            raise InputError(f"--steps (black-box queries per image) must be an integer >= 0, got {budget}")
        self.eps = eps
        self.budget = int(budget)
        self.p_init = p_init

    def __repr__(self) -> str:
        return f"SquareRankAttack(eps={self.eps:.6g} ({self.eps * 255:.4g}/255), budget={self.budget}, p_init={self.p_init})"

    def run(self, images: torch.Tensor, true_pids: torch.Tensor, oracle, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Adversarial images (B,3,H,W) and the queries each one used (B,); ``oracle`` maps images to top-k pids."""
        return self.search(images, lambda candidates, rows: rank_score(oracle(candidates), true_pids[rows]), generator)

    def search(
        self,
        images: torch.Tensor,  # (B,3,H,W) in [0,1]
        score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        generator: torch.Generator,
        done: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The random search on any rank-based ``score(candidates, rows)`` (A,) to minimise, ``rows`` (A,) the
        candidates' images in the batch; an image stops once its score is 0 or ``done(scores)`` (B,) says so.
        Returns the adversarial images and the score evaluations (queries) each one used (B,)."""
        used = torch.zeros(len(images), dtype=torch.long)
        if self.budget == 0 or len(images) == 0:
            return images.clone(), used
        batch, channels, height, width = images.shape
        stripes = self.eps * (2 * torch.randint(0, 2, (batch, channels, 1, width), generator=generator) - 1)
        best = (images + stripes.to(images)).clamp(0, 1)
        scores = score(best, torch.arange(batch)).cpu().double()
        used += 1
        for iteration in range(1, self.budget):
            active = ((scores > 0) & (True if done is None else ~done(scores))).nonzero().flatten()
            if len(active) == 0:
                break
            side = square_side(iteration, height, width, self.p_init)
            rows = torch.randint(0, height - side + 1, (len(active),), generator=generator)
            columns = torch.randint(0, width - side + 1, (len(active),), generator=generator)
            signs = self.eps * (2 * torch.randint(0, 2, (len(active), channels), generator=generator) - 1)
            candidates = best[active].clone()
            for row, (top, left) in enumerate(zip(rows.tolist(), columns.tolist())):
                window = (slice(None), slice(top, top + side), slice(left, left + side))
                original = images[active[row]][window]
                candidates[row][window] = (original + signs[row].to(images)[:, None, None]).clamp(0, 1)
            candidate_scores = score(candidates, active).cpu().double()
            used[active] += 1
            keep = candidate_scores <= scores[active]
            best[active[keep]] = candidates[keep]
            scores[active[keep]] = candidate_scores[keep]
        return best, used
