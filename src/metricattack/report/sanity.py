"""The sanity checks of a robust evaluation for the pages: titles, statuses, warnings, one row per check."""

from __future__ import annotations

from html import escape

CHECK_TITLES = {
    "eps0": "eps 0 equals clean",
    "large_eps": "large eps reaches chance",
    "gradient": "input gradient non-zero",
    "transfer": "white-box >= transfer",
    "monotone": "mAP falls with eps",
    "convergence": "attack converged",
    "collapse": "embeddings not collapsed",
}
MEANING = (
    "eps 0: the attack path with a ball of radius 0 must give the clean metrics exactly. Large eps: an attack at "
    "eps 64/255 must drive mAP to chance (the mAP of random rankings) or below. Gradient: the attack objective's input "
    "gradient through the whole model must be finite and non-zero. White-box >= transfer: attacking the model itself "
    "must hurt at least as much as images made on another model; when not, its gradient misleads the attack (gradient "
    "masking) and the robust numbers overstate robustness. Monotone / converged: a stronger or longer attack must not "
    "leave mAP higher. Collapse: the mean cosine of random pairs of clean embeddings near 1 means every image maps to "
    "nearly the same point, which looks robust but retrieves nothing; the shift is how far the attack moves embeddings "
    "relative to the distance between random images."
)


def status(check: dict | None) -> str:
    """pass / FAIL / - (not run) for a check."""
    if check is None or check.get("passed") is None:
        return "-"
    return "pass" if check["passed"] else "FAIL"


def status_class(check: dict | None) -> dict:
    """The table-row attributes that colour a check's status."""
    return {"class": {"pass": "pass", "FAIL": "fail"}.get(status(check), "skipped")}


def warnings(sanity: dict) -> str:
    """A warning paragraph per failed check (nothing when all passed)."""
    failed = [check for check in sanity.get("checks", []) if check.get("passed") is False]
    return "".join(f'<p class="warning">Warning ({escape(CHECK_TITLES.get(c["name"], c["name"]))}): {escape(c.get("summary", ""))}</p>'
                   for c in failed)  # fmt: skip


def sanity_rows(sanity: dict) -> tuple[list[list[str]], list[dict]]:
    """Per check: [title, status, summary], and the attributes of its table row."""
    checks = sanity.get("checks", [])
    return [[CHECK_TITLES.get(c["name"], c["name"]), status(c), c.get("summary", "")] for c in checks], [status_class(c) for c in checks]


def sanity_facts(sanity: dict) -> str:
    """One note: the model checked, how many checks passed, and the chance mAP."""
    chance = sanity.get("chance_mAP")
    return (f'<p class="note">Model checked: {escape(str(sanity.get("model", "?")))}; {sanity.get("passed", 0)} of '
            f'{sanity.get("run", 0)} checks passed; chance mAP (random rankings): '
            f'{"-" if chance is None else f"{100 * chance:.2f} %"}.</p>')  # fmt: skip
