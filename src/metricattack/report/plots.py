"""Figures of a run, as PNGs: robustness curves, ranking lists before / after, adversarial pairs.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global state)
and written atomically.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from metricattack.system.atomic import atomic_write
from metricattack.errors import InputError
from metricattack.report.summary import curves

MATCH, MISMATCH, TARGET = "#1a9641", "#d7191c", "#2c7bb6"
if TYPE_CHECKING:
    from matplotlib.figure import Figure

AMPLIFY = 10  # the perturbation is shown as 0.5 + AMPLIFY * (adversarial - original), clipped to [0, 1]


def new_figure(**options) -> Figure:
    """A matplotlib ``Figure`` (matplotlib is imported here, where figures are made, so the CLI starts fast)."""
    from matplotlib.figure import Figure

    return Figure(**options)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Render a figure to PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def plot_curves(record: dict, path: str | Path) -> Path:
    """mAP and rank-1 (%) against eps: a line per curve measured at several eps (starting from the clean
    value at eps 0), a lone marker per setting measured at one eps, the clean value of each model dashed."""
    figure = new_figure(figsize=(11, 4))
    found = curves(record)
    rows = [*record["clean"].values(), *record["results"]]
    top = {metric: max((row[metric] for row in rows), default=1.0) for metric in ("mAP", "rank1")}  # y axis: 0 to 1.1 x top
    for axis, metric, name in zip(figure.subplots(1, 2), ("mAP", "rank1"), ("mAP", "rank-1")):
        for (model, clean), dashes in zip(record["clean"].items(), itertools.cycle(("--", ":", "-."))):
            label = "clean" if len(record["clean"]) == 1 else f"clean ({model})"
            axis.axhline(100 * clean[metric], color="0.4", linestyle=dashes, linewidth=1, label=label)
        for number, curve in enumerate(found):
            points = [100 * v for v in getattr(curve, metric)]
            style = {"color": f"C{number % 10}", "label": curve.label}
            if len(curve.eps) > 1:
                clean = 100 * getattr(curve, f"clean_{metric}")
                axis.plot([0, *curve.eps], [clean, *points], marker="o", markersize=4, **style)
            else:
                axis.plot(curve.eps, points, marker="D", markersize=7, linestyle="none", **style)
        axis.set_xlabel("eps (pixels out of 255)")
        axis.set_ylabel(f"{name} (%)")
        axis.set_xlim(left=0)
        axis.set_ylim(0, min(100, 110 * top[metric]) or 100)
        axis.grid(alpha=0.3)
        axis.set_title(f"{name} under attack")
    figure.axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return save_figure(figure, path)


def load_rgb(run_dir: Path, relative: str) -> np.ndarray:
    """An example image of the run as an array (H, W, 3) in [0, 1]; a missing or broken file is an InputError."""
    path = Path(run_dir) / relative
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    except (FileNotFoundError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: cannot read the example image ({type(exc).__name__})") from None


def show(axis, image: np.ndarray, border: str | None, label: str) -> None:
    """An image in a cell, with an optional coloured frame and a caption above it."""
    axis.imshow(image)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)
    if border is not None:
        height, width = image.shape[:2]
        from matplotlib.patches import Rectangle

        axis.add_patch(Rectangle((0, 0), width - 1, height - 1, fill=False, edgecolor=border, linewidth=4))
    axis.set_title(label, fontsize=7)


def gallery_border(entry: dict) -> str:
    """Blue for the target identity, green for a true match, red otherwise."""
    if entry.get("target"):
        return TARGET
    return MATCH if entry["match"] else MISMATCH


def gallery_label(rank: int, entry: dict) -> str:
    """Rank and identity, then 'adv' for an adversarial image and 'target' for the target identity."""
    marks = [mark for mark, on in (("adv", entry["attacked"]), ("target", entry.get("target"))) if on]
    return f"{rank}. pid {entry['pid']}\n{' '.join(marks)}"


def plot_ranking(ranking: dict, run_dir: Path, path: str | Path, title: str) -> Path:
    """The query, then its top-10 gallery before (first row) and after (second row) the attack."""
    columns = 1 + max(len(ranking["clean_top"]), len(ranking["attacked_top"]), 1)
    figure = new_figure(figsize=(0.95 * columns, 4.4))
    axes = figure.subplots(2, columns, squeeze=False)
    rows = (("clean_top", "image", "before"), ("attacked_top", "attacked_image", "after"))
    for row, (list_key, query_key, when) in enumerate(rows):
        attacked_query = when == "after" and ranking[query_key] != ranking["image"]
        query_label = f"query {when}\npid {ranking['pid']}" + (" adv" if attacked_query else "")
        show(axes[row][0], load_rgb(run_dir, ranking[query_key]), None, query_label)
        axes[row][0].set_ylabel(f"{when} attack", fontsize=8)
        entries = ranking[list_key]
        for column in range(1, columns):
            if column > len(entries):
                axes[row][column].axis("off")
                continue
            entry = entries[column - 1]
            show(axes[row][column], load_rgb(run_dir, entry["image"]), gallery_border(entry), gallery_label(column, entry))
    target = f"; target pid {ranking['target_pid']} (blue)" if ranking.get("target_pid") is not None else ""
    figure.suptitle(f"{title}{target}. Green: true match, red: false match", fontsize=9)
    return save_figure(figure, path)


def plot_pairs(pairs: list[dict], run_dir: Path, path: str | Path) -> Path:
    """The pairs side by side, each as original, adversarial, and the perturbation as
    0.5 + 10 x (adversarial - original), clipped to [0, 1] (grey: unchanged)."""
    if not pairs:
        raise InputError("plot_pairs: no adversarial pairs to show")
    figure = new_figure(figsize=(2.7 * len(pairs), 2.4))
    for panel, pair in zip(np.atleast_1d(figure.subfigures(1, len(pairs))), pairs):
        original = load_rgb(run_dir, pair["original"])
        adversarial = load_rgb(run_dir, pair["adversarial"])
        difference = adversarial - original
        largest = round(float(np.abs(difference).max()) * 255)
        target_pid = pair.get("target_pid")
        target = f" -> pid {target_pid}" if target_pid is not None and target_pid >= 0 else ""  # -1: no target
        panel.suptitle(f"{pair['side']} pid {pair['pid']}{target}", fontsize=8)
        axes = panel.subplots(1, 3)
        show(axes[0], original, None, "original")
        show(axes[1], adversarial, None, "adversarial")
        show(axes[2], np.clip(0.5 + AMPLIFY * difference, 0, 1), None, f"x{AMPLIFY} (max {largest})")
    return save_figure(figure, path)
