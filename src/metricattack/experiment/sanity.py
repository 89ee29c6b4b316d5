"""Sanity checks of a robustness evaluation: the signs that an attack, not the model, is what failed.

A defense can look robust because the evaluation is broken: gradients that vanish or explode
(gradient masking, Athalye et al. 2018), an attack that never converged, or a model whose
embeddings collapsed so that nothing moves. Following Carlini et al. ("On evaluating adversarial
robustness", 2019), every robust evaluation runs these checks and reports them:

- ``eps0``: the attack path with a ball of radius 0 returns the clean images, so its metrics equal
  the clean metrics exactly;
- ``large_eps``: an unbounded-looking attack (eps 64/255) drives mAP to chance (expected mAP of
  uniformly random rankings);
- ``gradient``: the attack objective's input gradient through the whole model is finite and non-zero;
- ``transfer``: white-box is at least as strong as transfer from another model (else: gradient masking);
- ``monotone``: mAP does not rise with eps; ``convergence``: more steps do not lower mAP much further;
- ``collapse``: mean cosine of random pairs of clean embeddings (near 1: collapsed), with the mean
  embedding shift under attack relative to the mean distance of random pairs.

Each check is a dict: ``name``, ``passed`` (True, False, or None when it could not be run),
``summary`` (one line), and its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from metricattack.attacks.attack import eval_mode
from metricattack.attacks.losses import NonTargetedMetricLoss
from metricattack.attacks.step_rule import StepRule
from metricattack.evaluation import evaluate_ranking, valid_mask
from metricattack.evaluation.distance import paired_distance
from metricattack.experiment.campaign import Campaign
from metricattack.experiment.outcome import AttackOutcome
from metricattack.experiment.registry import run_attack
from metricattack.experiment.scoring import evaluate_outcome
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.side_images import has_match

LARGE_EPS = AttackSetting("ifgsm", 64.0, "gallery", steps=20, step_size=8.0)  # no random start: only gradients move it
CHANCE_FACTOR = 2.0  # large_eps passes when mAP <= max(2 x chance, chance + 1 point)
TRANSFER_TOLERANCE = 0.005  # white-box mAP may exceed transfer mAP by half a point (quantisation noise)
MONOTONE_TOLERANCE = 0.01
CONVERGENCE_TOLERANCE = 0.01
COLLAPSE_COSINE = 0.9
RANDOM_PAIRS = 2000
GRADIENT_IMAGES = 32


class ZeroBall:
    """A step rule run inside a ball of radius 0: a mask lets no pixel change (``StepRule.run``'s ``mask``).

    Every other member is the rule's own, so the random start, the steps, best-iterate tracking, 8-bit
    rounding and the evaluation of attacked rows all run as in an attack.
    """

    def __init__(self, rule: StepRule) -> None:
        self.rule = rule

    def __getattr__(self, name: str):
        return getattr(self.rule, name)

    def run(self, images: torch.Tensor, objective, generator=None, done=None, mask=None) -> torch.Tensor:
        """The rule's adversarial images with nothing allowed to change: the images themselves, through the attack path."""
        return self.rule.run(images, objective, generator, done, mask=images.new_zeros(len(images), *[1] * (images.dim() - 1)))


@dataclass(frozen=True)
class ZeroBallSetting(AttackSetting):
    """A setting whose step rule runs with a ball of radius 0: no pixel may change.

    Users cannot ask for eps 0 (``pixels_to_fraction`` refuses it), nor can a step rule be built with it;
    this setting builds its rule at eps 1/255 through the constructor and runs it with a mask of zeros.
    """

    def step_rule(self) -> ZeroBall:
        """The step rule of this setting at eps 1/255, run inside a ball of radius 0."""
        return ZeroBall(AttackSetting.step_rule(replace(self, eps=1.0)))


def embedding_shift(campaign: Campaign, outcome: AttackOutcome, named: NamedModel) -> float | None:
    """Mean distance between the attacked and clean features of the attacked images, on ``named``'s features
    (after ``scoring.evaluate_outcome`` stored them); None when nothing was attacked."""
    attacked_query, attacked_gallery = outcome.features[named.name]
    clean_query, clean_gallery = campaign.clean_features(named)
    query_rows, gallery_rows = outcome.query_indices.to(campaign.device), outcome.gallery_indices.to(campaign.device)
    attacked = torch.cat([attacked_query[query_rows], attacked_gallery[gallery_rows]])
    clean = torch.cat([clean_query[query_rows], clean_gallery[gallery_rows]])
    if len(attacked) == 0:
        return None
    spec = named.model.spec
    return paired_distance(attacked, clean, spec.metric, spec.normalize).mean().item()


def expected_random_ap(num_valid: torch.Tensor, num_matches: torch.Tensor) -> torch.Tensor:
    """Expected standard AP of a uniformly random ranking of N valid items of which n are true matches.

    A match at rank r has, in expectation, 1 + (r-1)(n-1)/(N-1) matches in its top r; averaging its
    precision over r = 1..N (each equally likely):  E[AP] = (H_N + (n-1)/(N-1) (N - H_N)) / N,
    with H_N the N-th harmonic number (E[AP] = 1 when N = 1).
    """
    num_valid, num_matches = num_valid.double(), num_matches.double()
    harmonic = torch.special.digamma(num_valid + 1) + 0.5772156649015329  # H_N
    share = torch.where(num_valid > 1, (num_matches - 1) / (num_valid - 1).clamp(min=1), torch.zeros_like(num_valid))
    return (harmonic + share * (num_valid - harmonic)) / num_valid


def chance_map(campaign: Campaign, draws: int = 20) -> float:
    """mAP of uniformly random rankings on the campaign's query and gallery, under its protocol.

    Exact (``expected_random_ap``) for standard AP; the mean over ``draws`` seeded random distance
    matrices for the trapezoid AP.
    """
    pids = (campaign.query.pids, campaign.gallery.pids, campaign.query.camids, campaign.gallery.camids)
    if campaign.average_precision == "standard":
        valid = valid_mask(*pids)  # (Q,G)
        matches = valid & (pids[0][:, None] == pids[1][None, :])
        num_valid, num_matches = valid.sum(dim=1), matches.sum(dim=1)
        kept = num_matches > 0  # queries without a true match are skipped by the evaluation
        return expected_random_ap(num_valid[kept], num_matches[kept]).mean().item()
    generator = torch.Generator().manual_seed(campaign.seed)
    shape = (len(campaign.query.pids), len(campaign.gallery.pids))
    values = [evaluate_ranking(torch.rand(shape, generator=generator), *pids, average_precision="trapezoid").mAP
              for _ in range(draws)]  # fmt: skip
    return sum(values) / draws


def _check(name: str, passed: bool | None, summary: str, **numbers) -> dict:
    return {"name": name, "passed": passed, "summary": summary, **numbers}


def _attacked_metrics(campaign: Campaign, setting: AttackSetting, named: NamedModel) -> tuple[dict, float | None]:
    """Attack with ``named`` itself and evaluate on it: (metrics, mean embedding shift)."""
    outcome = run_attack(campaign, setting, [campaign.deploy(named)])
    metrics, _ = evaluate_outcome(campaign, outcome, named)
    return metrics, embedding_shift(campaign, outcome, named)


def eps_zero_check(campaign: Campaign, named: NamedModel) -> dict:
    """PGD on both sides with a ball of radius 0 must give the clean metrics exactly."""
    setting = ZeroBallSetting("pgd", 0.0, "both", steps=2, restarts=1)
    attacked, shift = _attacked_metrics(campaign, setting, named)
    clean = campaign.clean_metrics(named).as_dict()
    same = all(attacked[key] == value for key, value in clean.items())  # the rows also hold damage columns
    summary = ("eps 0 through the attack path gives the clean metrics exactly" if same else
               f"eps 0 changed the metrics: mAP {100 * clean['mAP']:.2f} -> {100 * attacked['mAP']:.2f} (an attack path bug)")  # fmt: skip
    return _check("eps0", same, summary, clean_mAP=clean["mAP"], mAP=attacked["mAP"], embedding_shift=shift)


def large_eps_check(campaign: Campaign, named: NamedModel, chance: float) -> dict:
    """A very large eps (64/255, gradient steps only) must drive mAP to chance."""
    attacked, shift = _attacked_metrics(campaign, LARGE_EPS, named)
    bound = max(CHANCE_FACTOR * chance, chance + 0.01)
    passed = attacked["mAP"] <= bound
    verdict = "reaches chance" if passed else "stays above chance: the gradient does not reach the input (masking) or the attack is broken"
    summary = f"{LARGE_EPS.key}: mAP {100 * attacked['mAP']:.1f} vs chance {100 * chance:.1f} (bound {100 * bound:.1f}): {verdict}"
    return _check("large_eps", passed, summary, key=LARGE_EPS.key, mAP=attacked["mAP"], chance_mAP=chance, bound=bound,
                  embedding_shift=shift)  # fmt: skip


def gradient_check(campaign: Campaign, named: NamedModel) -> dict:
    """The input gradient of the gallery attack's objective through the whole model is finite and non-zero, per image."""
    query, gallery = campaign.query, campaign.gallery
    candidates = has_match(gallery.pids, query.pids).nonzero().flatten()
    generator = torch.Generator().manual_seed(campaign.seed)
    chosen = candidates[torch.randperm(len(candidates), generator=generator)[:GRADIENT_IMAGES]]
    if len(chosen) == 0:
        return _check("gradient", None, "no gallery image shares an identity with a query: nothing to probe")
    spec = named.model.spec
    images = gallery.read(chosen).to(campaign.device).float().div(255).requires_grad_(True)
    own = gallery.pids[chosen].to(campaign.device)[:, None] == query.pids.to(campaign.device)[None, :]
    loss = NonTargetedMetricLoss(spec.metric, spec.normalize)
    with eval_mode([named.model]), torch.enable_grad():
        values = loss(named.model(images), campaign.clean_features(named)[0], own)
        (grad,) = torch.autograd.grad(values.sum(), images)
    per_image = grad.flatten(1)
    finite = per_image.isfinite().all(dim=1)
    zero = finite & (per_image.abs().amax(dim=1) == 0)
    share_zero, share_nonfinite = zero.float().mean().item(), (~finite).float().mean().item()
    mean_abs = per_image[finite].abs().mean().item() if finite.any() else None
    passed = share_zero == 0 and share_nonfinite == 0
    summary = (f"input gradient non-zero and finite for all {len(chosen)} probed images (mean |grad| {mean_abs:.2e})" if passed else
               f"input gradient zero for {100 * share_zero:.0f} % and non-finite for {100 * share_nonfinite:.0f} % of "
               f"{len(chosen)} probed images: white-box attacks cannot work (gradient masking)")  # fmt: skip
    return _check("gradient", passed, summary, images=len(chosen), share_zero=share_zero,
                  share_nonfinite=share_nonfinite, mean_abs_gradient=mean_abs)  # fmt: skip


def collapse_check(campaign: Campaign, named: NamedModel, shift: float | None, shift_key: str | None) -> dict:
    """Mean cosine of random pairs of clean gallery embeddings (collapsed when >= 0.9), and the embedding
    shift ``shift`` under attack ``shift_key`` relative to the mean distance of random pairs."""
    features = campaign.clean_features(named)[1]
    if len(features) < 2:
        return _check("collapse", None, "fewer than two gallery images: no pairs to compare")
    generator = torch.Generator().manual_seed(campaign.seed)
    first = torch.randint(len(features), (RANDOM_PAIRS,), generator=generator)
    second = (first + torch.randint(1, len(features), (RANDOM_PAIRS,), generator=generator)) % len(features)  # never first
    a, b = features[first.to(features.device)], features[second.to(features.device)]
    cosine = F.cosine_similarity(a, b, dim=1).mean().item()
    spec = named.model.spec
    pair_distance = paired_distance(a, b, spec.metric, spec.normalize).mean().item()
    relative = shift / pair_distance if shift is not None and pair_distance > 0 else None
    passed = cosine < COLLAPSE_COSINE
    moved = "" if relative is None else f"; {shift_key} moves embeddings by {relative:.2f} x the random-pair distance"
    verdict = "not collapsed" if passed else "COLLAPSED: embeddings nearly identical, so robustness numbers mean little"
    summary = f"mean cosine of {RANDOM_PAIRS} random pairs {cosine:.3f} ({verdict}){moved}"
    return _check("collapse", passed, summary, mean_cosine=cosine, mean_pair_distance=pair_distance,
                  embedding_shift=shift, relative_shift=relative, shift_key=shift_key)  # fmt: skip


def _white_box(record: dict, name: str) -> list[dict]:
    return [row for row in record["results"] if row["source"] == name and row["target"] == name]


def transfer_check(record: dict, name: str) -> dict:
    """White-box mAP <= transfer mAP (+0.5 point) for every transfer row with a white-box twin, on model ``name``."""
    white = {row["key"]: row for row in _white_box(record, name)}
    pairs = [(white[row["key"].rsplit("-from-", 1)[0]], row) for row in record["results"]
             if row["target"] == name and row["source"] != name and row["key"].rsplit("-from-", 1)[0] in white]  # fmt: skip
    if not pairs:
        return _check("transfer", None, "no transfer result with a white-box twin (the model under test may be the transfer source)")
    worse = [t["key"] for w, t in pairs if w["mAP"] > t["mAP"] + TRANSFER_TOLERANCE]
    compared = [{"key": w["key"], "source": t["source"], "white_box_mAP": w["mAP"], "transfer_mAP": t["mAP"]} for w, t in pairs]
    summary = (f"white-box at least as strong as transfer in all {len(pairs)} settings" if not worse else
               f"WARNING: transfer beats white-box in {', '.join(worse)}: the white-box gradient is misleading (gradient masking)")  # fmt: skip
    return _check("transfer", not worse, summary, compared=compared)


def series_of(rows: list[dict], along: str) -> list[list[dict]]:
    """Rows grouped by attack, norm, side, goal, restarts, target, pipeline, objective, distance and schedule
    (and eps, along steps), each group sorted by ``along`` ("eps" or "steps"); only groups measured at several
    values. Rows of a series (e.g. the convergence steps) are left out of the eps curves."""
    fields = ("attack", "norm", "side", "goal", "restarts", "target_pid", "pipeline", "attack_loss", "attack_distance", "schedule")
    fields += ("eps",) if along == "steps" else ()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if along == "eps" and row.get("series") is not None:
            continue
        groups.setdefault(tuple(row.get(field) for field in fields), []).append(row)
    return [sorted(group, key=lambda row: row[along]) for group in groups.values() if len({r[along] for r in group}) > 1]


def monotone_check(record: dict, name: str) -> dict:
    """mAP never rises by more than 1 point from one eps to a larger one (white-box curves of ``name``)."""
    curves = series_of(_white_box(record, name), "eps")
    rises = [f"{b['key']} ({100 * a['mAP']:.1f} -> {100 * b['mAP']:.1f})"
             for rows in curves for a, b in zip(rows, rows[1:]) if b["mAP"] > a["mAP"] + MONOTONE_TOLERANCE]  # fmt: skip
    if not curves:
        return _check("monotone", None, "no white-box attack measured at several eps")
    summary = "mAP falls (or stays) as eps grows on every curve"
    if rises:
        summary = (f"mAP rises with eps at {', '.join(rises)}: a larger ball left a better ranking, so the attack does "
                   "not optimise what is evaluated (or does not converge) there; its numbers overstate robustness")
    return _check("monotone", not rises, summary, rises=rises)


def convergence_check(record: dict, name: str) -> dict:
    """The most steps lower mAP by at most 1 point below the second most (white-box series over steps at one eps)."""
    series = series_of(_white_box(record, name), "steps")
    if not series:
        return _check("convergence", None, "no white-box attack measured at several step counts")
    steps = [{"key": rows[0]["key"], "steps": [r["steps"] for r in rows], "mAP": [r["mAP"] for r in rows]} for rows in series]
    unconverged = [s for s in steps if s["mAP"][-1] < s["mAP"][-2] - CONVERGENCE_TOLERANCE]
    described = "; ".join(f"{', '.join(f'{n} steps {100 * m:.1f}' for n, m in zip(s['steps'], s['mAP']))}" for s in steps)
    summary = f"mAP by steps: {described}" + (": NOT converged, more steps still lower mAP" if unconverged else ": converged")
    return _check("convergence", not unconverged, summary, series=steps)


def sanity_checks(campaign: Campaign, record: dict, named: NamedModel, headline_key: str | None = None) -> dict:
    """Every check on the model ``named`` of a finished sweep ``record``; the attacks use the campaign's seed."""
    chance = chance_map(campaign)
    large = large_eps_check(campaign, named, chance)
    headline = [row for row in _white_box(record, named.name) if row["key"] == headline_key]
    shift, shift_key = (headline[0].get("embedding_shift"), headline_key) if headline else (large["embedding_shift"], LARGE_EPS.key)
    checks = [
        eps_zero_check(campaign, named),
        large,
        gradient_check(campaign, named),
        transfer_check(record, named.name),
        monotone_check(record, named.name),
        convergence_check(record, named.name),
        collapse_check(campaign, named, shift, shift_key),
    ]
    failed = [check["name"] for check in checks if check["passed"] is False]
    return {"model": named.name, "chance_mAP": chance, "checks": checks, "failed": failed,
            "passed": sum(check["passed"] is True for check in checks), "run": sum(check["passed"] is not None for check in checks)}  # fmt: skip
