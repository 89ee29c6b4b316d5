"""Figures of a run, as PNGs: robustness curves, ranking lists before / after, adversarial pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from metricattack.atomic import atomic_write
from metricattack.report.summary import Curve

MATCH, MISMATCH, TARGET = "#1a9641", "#d7191c", "#2c7bb6"
AMPLIFY = 10  # perturbation shown as 0.5 + AMPLIFY * (adversarial - original)


def save_figure(figure: Figure, path: Path) -> Path:
    """Render a figure to PNG atomically."""
    FigureCanvasAgg(figure)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def plot_curves(curves: list[Curve], path: Path) -> Path:
    """mAP and rank-1 against eps for each curve; clean values dashed."""
    figure = Figure(figsize=(10, 3.8))
    for axis, metric, clean_metric, title in zip(
        figure.subplots(1, 2), ("mAP", "rank1"), ("clean_mAP", "clean_rank1"), ("mAP", "rank-1")
    ):
        for number, curve in enumerate(curves):
            colour = f"C{number % 10}"
            axis.plot([0, *curve.eps], [100 * getattr(curve, clean_metric), *(100 * v for v in getattr(curve, metric))],
                      marker="o", color=colour, label=curve.label)  # fmt: skip
            axis.axhline(100 * getattr(curve, clean_metric), color=colour, linestyle="--", linewidth=0.8)
        axis.set_xlabel("epsilon (pixels out of 255)")
        axis.set_ylabel(f"{title} (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.set_title(f"{title} under attack (dashed: clean)")
    figure.axes[0].legend(fontsize=7, loc="upper right")
    return save_figure(figure, path)


def load_rgb(run_dir: Path, relative: str) -> np.ndarray:
    """An example image of the run as an array (H,W,3) in [0,1]."""
    with Image.open(run_dir / relative) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def show(axis, image: np.ndarray, border: str | None, label: str) -> None:
    """An image in a cell, with a coloured frame and a caption."""
    axis.imshow(image)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)
    if border is not None:
        h, w = image.shape[:2]
        axis.add_patch(Rectangle((0, 0), w - 1, h - 1, fill=False, edgecolor=border, linewidth=3))
    axis.set_title(label, fontsize=7)


def gallery_border(entry: dict) -> str:
    """Blue for the target identity, green for a true match, red otherwise."""
    if entry.get("target"):
        return TARGET
    return MATCH if entry["match"] else MISMATCH


def plot_ranking(ranking: dict, run_dir: Path, path: Path, title: str) -> Path:
    """The query, then its top-10 before (first row) and after (second row) the attack."""
    columns = 1 + max(len(ranking["clean_top"]), len(ranking["attacked_top"]), 1)
    figure = Figure(figsize=(1.0 * columns, 4.6))
    axes = figure.subplots(2, columns)
    for row, (key, query_key, name) in enumerate(
        (("clean_top", "image", "clean"), ("attacked_top", "attacked_image", "attacked"))
    ):
        show(axes[row][0], load_rgb(run_dir, ranking[query_key]), None, f"query ({name})\npid {ranking['pid']}")
        for column in range(1, columns):
            axis = axes[row][column]
            entries = ranking[key]
            if column - 1 >= len(entries):
                axis.axis("off")
                continue
            entry = entries[column - 1]
            label = f"{column}: pid {entry['pid']}" + (" adv" if entry["attacked"] else "")
            show(axis, load_rgb(run_dir, entry["image"]), gallery_border(entry), label)
    target = f", target pid {ranking['target_pid']} (blue)" if ranking.get("target_pid") is not None else ""
    figure.suptitle(f"{title}{target}: green = true match, red = false match", fontsize=9)
    return save_figure(figure, path)


def plot_pairs(pairs: list[dict], run_dir: Path, path: Path) -> Path:
    """Rows of original, adversarial and the perturbation amplified (0.5 + 10 x difference)."""
    figure = Figure(figsize=(3.4, 1.9 * max(len(pairs), 1)))
    axes = np.atleast_2d(figure.subplots(max(len(pairs), 1), 3))
    for row, pair in enumerate(pairs):
        original = load_rgb(run_dir, pair["original"])
        adversarial = load_rgb(run_dir, pair["adversarial"])
        difference = adversarial - original
        largest = int(round(np.abs(difference).max() * 255))
        show(axes[row][0], original, None, f"{pair['side']} pid {pair['pid']}")
        show(axes[row][1], adversarial, None, "adversarial")
        show(axes[row][2], np.clip(0.5 + AMPLIFY * difference, 0, 1), None, f"x{AMPLIFY} (max {largest}/255)")
    return save_figure(figure, path)
