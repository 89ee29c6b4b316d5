"""Report sections for threat models beyond one white-box model: the transfer matrix (table and heatmap),
damage against queries of the black-box attack, and universal perturbations."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from pathlib import Path

import numpy as np

from metricattack.report.plots import new_figure, save_figure
from metricattack.report.summary import BUDGET_ATTACKS


def is_white_box(source: str, target: str) -> bool:
    """The evaluated model is (one of) the model(s) that made the images."""
    return target in source.split("+")


def transfer_groups(record: dict) -> dict[tuple, list[dict]]:
    """Rows of settings evaluated on several models or made by several sources, by (attack, norm, eps, side, goal)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in record["results"]:
        if row["attack"] not in BUDGET_ATTACKS:
            groups[(row["attack"], row["norm"], row["eps"], row["side"], row["goal"])].append(row)
    return {key: rows for key, rows in groups.items() if len({(r["source"], r["target"]) for r in rows}) > 1}


def _matrix(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    sources = list(dict.fromkeys(row["source"] for row in rows))
    targets = list(dict.fromkeys(row["target"] for row in rows))
    return sources, targets, {(row["source"], row["target"]): row["mAP"] for row in rows}


def plot_transfer(record: dict, path: str | Path) -> Path:
    """One heatmap per setting: sources (rows) x evaluated models (columns), mAP under attack as a share of the
    model's clean mAP; white-box cells hatched with a black frame, black-box (transfer) cells plain."""
    from matplotlib.patches import Rectangle  # matplotlib is imported where figures are made

    groups = transfer_groups(record)
    figure = new_figure(figsize=(5.6 * len(groups), 0.6 * max(len(_matrix(r)[0]) for r in groups.values()) + 2.4))
    axes = np.atleast_1d(figure.subplots(1, len(groups), gridspec_kw={"wspace": 0.75}))
    for axis, ((attack, norm, eps, side, goal), rows) in zip(axes, groups.items()):
        sources, targets, value = _matrix(rows)
        clean = [record["clean"].get(t, {}).get("mAP", float("nan")) for t in targets]
        relative = np.array([[value.get((s, t), np.nan) / c if c else np.nan for t, c in zip(targets, clean)] for s in sources])
        axis.imshow(relative, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for i, source in enumerate(sources):
            for j, target in enumerate(targets):
                if (source, target) not in value:
                    continue
                white = is_white_box(source, target)
                if white:
                    axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="black", linewidth=2))
                label = f"{100 * value[(source, target)]:.1f}" + ("\nwhite-box" if white else "")
                axis.text(j, i, label, ha="center", va="center", fontsize=7, fontweight="bold" if not white else "normal")
        axis.set_xticks(range(len(targets)), [f"{t}\n(clean {100 * c:.1f})" for t, c in zip(targets, clean)], fontsize=6, rotation=30)
        axis.set_yticks(range(len(sources)), [s.replace("+", "+\n") for s in sources], fontsize=6)
        axis.set_title(f"{attack} {norm} eps {eps:g}, {side} {goal}", fontsize=8)
        axis.set_xlabel("evaluated model", fontsize=7)
    figure.axes[0].set_ylabel("attacking model(s)", fontsize=7)
    figure.suptitle("mAP (%) under attack; colour: share of the clean mAP left (red: broken); hatched: white-box", fontsize=9)
    return save_figure(figure, path)


def transfer_summary(record: dict) -> list[list[str]]:
    """Per setting: mean mAP (%) over white-box cells and over black-box (transfer) cells, and the black-box
    mean share of clean mAP left (lower: transfers better)."""
    table = []
    for (attack, norm, eps, side, goal), rows in transfer_groups(record).items():
        cells = {True: [], False: []}
        for row in rows:
            clean = record["clean"].get(row["target"], {}).get("mAP")
            cells[is_white_box(row["source"], row["target"])].append((row["mAP"], row["mAP"] / clean if clean else np.nan))
        mean = {kind: (np.mean([v[0] for v in c]) if c else np.nan, np.mean([v[1] for v in c]) if c else np.nan)
                for kind, c in cells.items()}  # fmt: skip
        table.append([attack, norm, f"{eps:g}", side, goal, f"{100 * mean[True][0]:.1f}", f"{100 * mean[False][0]:.1f}",
                      f"{100 * mean[False][1]:.1f}", str(len(cells[False]))])  # fmt: skip
    return table


def plot_budgets(record: dict, path: str | Path) -> Path:
    """mAP and rank-1 (%) against queries per image for each black-box curve, from the clean value at 0 queries."""
    figure = new_figure(figsize=(10, 3.6))
    curves: dict[tuple, list[dict]] = defaultdict(list)
    for row in record["results"]:
        if row["attack"] in BUDGET_ATTACKS:
            curves[(row["attack"], row["eps"], row["source"], row["target"])].append(row)
    for axis, metric, name in zip(figure.subplots(1, 2), ("mAP", "rank1"), ("mAP", "rank-1")):
        for number, ((attack, eps, source, target), rows) in enumerate(curves.items()):
            rows = sorted(rows, key=lambda row: row["steps"])
            clean = record["clean"].get(target, {}).get(metric)
            budgets = [0, *(r["steps"] for r in rows)] if clean is not None else [r["steps"] for r in rows]
            values = ([clean] if clean is not None else []) + [r[metric] for r in rows]
            axis.plot(budgets, [100 * v for v in values], marker="o", color=f"C{number % 10}",
                      label=f"{attack} eps {eps:g} ({source} -> {target})")  # fmt: skip
        axis.set_xlabel("queries per image")
        axis.set_ylabel(f"{name} (%)")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.set_title(f"{name} against the query budget")
    figure.axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return save_figure(figure, path)


def threat_sections(record: dict, run_dir: Path, table, image) -> str:
    """The transfer, black-box and universal-perturbation sections (empty when the run has none of them);
    ``table`` and ``image`` are the page's HTML helpers."""
    parts = []
    if transfer_groups(record):
        plot_transfer(record, run_dir / "figures" / "transfer.png")
        headers = ["attack", "norm", "eps", "side", "goal", "white-box mAP", "black-box mAP", "black-box % of clean", "black-box cells"]
        parts += [
            "<h2>Transfer</h2>",
            '<p class="note">Rows: the model(s) that made the images (a+b: an ensemble averaging their losses); columns: '
            "the model evaluated. White-box cells (the evaluated model made the images, alone or in the ensemble) are "
            "hatched and labelled; the others are black-box transfer. Below: means over each kind of cell "
            "(lower black-box mAP: the attack transfers better).</p>",
            image("figures/transfer.png", "transfer matrix heatmap"),
            table(headers, transfer_summary(record), text_columns=5),
        ]
    if any(row["attack"] in BUDGET_ATTACKS for row in record["results"]):
        plot_budgets(record, run_dir / "figures" / "budgets.png")
        parts += [
            "<h2>Query-limited black-box attack</h2>",
            '<p class="note">The attacker sees only the identities of the top 10 gallery images returned for each '
            "query it submits (Square Attack random search on a rank score); at 0 queries, the clean result.</p>",
            image("figures/budgets.png", "mAP and rank-1 against queries per image"),
        ]
    universal = [(key, ex["perturbation"]) for key, ex in record.get("examples", {}).items() if ex.get("perturbation")]
    if universal:
        parts.append("<h2>Universal perturbations</h2>")
        parts.append('<p class="note">The one perturbation added to every attacked image, scaled to the full range '
                     "(grey: no change); perturbation_raw.png beside it holds 128 + 255 x delta exactly.</p>")  # fmt: skip
        for key, files in universal:
            parts += [f"<h3>{escape(key)}</h3>", image(files["image"], f"universal perturbation of {key}")]
    return "".join(parts)
