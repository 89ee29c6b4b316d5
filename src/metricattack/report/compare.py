"""`metricattack compare`: several runs side by side, as one self-contained HTML page and tables.

Each run contributes its model under test (the white-box model: the first attacking model of the
run). The page holds a summary (clean and robust mAP, robust / clean, the paper's setting, transfer,
training cost, sanity checks), every setting's mAP per model, mAP-vs-eps curves of all models
overlaid, and each model's sanity checks. No script; the figure is embedded as a data URI.
"""

from __future__ import annotations

import base64
import csv
import io
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path


from metricattack.system.atomic import atomic_write_bytes, atomic_write_text
from metricattack.errors import InputError
from metricattack.experiment.plans import PAPER_SETTING, TRANSFER_SOURCE
from metricattack.experiment.robustness_score import robustness_score
from metricattack.report.conditions import condition_cells, differing_conditions, headline_of, unlike_warning
from metricattack.report.html import STYLE, facts_table, table
from metricattack.report.plots import new_figure
from metricattack.experiment.results import format_cell, read_results
from metricattack.report.sanity import CHECK_TITLES, MEANING, sanity_facts, sanity_rows, status, warnings
from metricattack.experiment.sanity import series_of

SUMMARY_COLUMNS = (
    ("model", "model"), ("run", "run"), ("defense", "defense"), ("clean_mAP", "clean mAP"),
    ("clean_rank1", "clean rank-1"), ("score", "robustness score"), ("robust_mAP", "headline eps 8 mAP"), ("robust_ratio", "robust / clean"),
    ("paper_mAP", "I-FGSM eps 5 mAP"), ("paper_ratio", "paper / clean"), ("transfer_mAP", "transfer eps 8 mAP"),
    ("cost", "inner steps + 1"), ("wall_time", "wall time vs normal"), ("sanity", "sanity checks"),
)  # fmt: skip
LONG_COLUMNS = ("model", "run", "key", "attack", "eps", "steps", "side", "goal", "source", "mAP", "rank1", "mINP",
                "target_success_rank1", "relative_mAP", "embedding_shift")  # fmt: skip
PERCENT = {"clean_mAP", "clean_rank1", "robust_mAP", "paper_mAP", "transfer_mAP"}


def _number(value) -> bool:
    """A positive int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def training_summary(meta: dict) -> dict:
    """How a model was trained, read defensively from its checkpoint metadata: defense name and options
    (``defense``: a name or a mapping with ``name``, ``eps``, ``steps`` and optionally ``cost``), the cost in
    passes per image relative to normal training (the defense's ``cost``, else inner steps + 1; 1 without a
    defense), ``train_seconds`` and epochs."""
    defense = meta.get("defense")
    defense = {"name": defense} if isinstance(defense, str) else defense if isinstance(defense, dict) else None
    steps = defense.get("steps", defense.get("inner_steps")) if defense else 0
    steps = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    if defense and isinstance(defense.get("eps"), (int, float)) and defense["eps"] == 0:
        steps = 0  # eps 0: the defense trains on clean images only
    seconds = meta.get("train_seconds")
    config = meta.get("train_config") if isinstance(meta.get("train_config"), dict) else {}
    epochs = config.get("epochs", meta.get("epoch"))
    return {
        "defense": str(defense.get("name", "?")) if defense else "none",
        "options": {k: v for k, v in defense.items() if k != "name"} if defense else {},
        "inner_steps": steps,
        "cost": defense["cost"] if defense and _number(defense.get("cost")) else None if steps is None else steps + 1,
        "train_seconds": seconds if _number(seconds) else None,
        "epochs": epochs if isinstance(epochs, int) and epochs > 0 else None,
        "train_command": meta.get("train_command"),
    }


@dataclass
class ComparedModel:
    """One run's model under test: its display name, run folder, record and name inside the record."""

    label: str
    run_dir: Path
    record: dict
    model: str

    @property
    def clean(self) -> dict:
        """The model's clean metrics."""
        return self.record["clean"].get(self.model, {})

    def row(self, key: str, source: str | None = None) -> dict | None:
        """The result row of setting ``key`` evaluated on the model, made by ``source`` (default: itself)."""
        source = self.model if source is None else source
        found = [r for r in self.record["results"] if r["key"] == key and r["target"] == self.model and r["source"] == source]
        return found[0] if found else None

    @property
    def headline(self) -> str | None:
        """The key of the run's main setting (``conditions.headline_of``)."""
        return headline_of(self.record)

    @property
    def score(self) -> float | None:
        """The model's robustness score (``experiment.robustness_score``), recorded or computed from its rows."""
        recorded = self.record.get("robustness", {}).get(self.model) or robustness_score(self.record, self.model)
        return recorded and recorded["score"]

    @property
    def training(self) -> dict:
        """The training summary stored by the run (all unknown when absent)."""
        return self.record.get("training", {}).get(self.model) or training_summary({})


def load_runs(run_dirs: list[str | Path]) -> list[ComparedModel]:
    """Each run's model under test; labels get the run folder's name when two models share a name."""
    if not run_dirs:
        raise InputError("compare: expected at least one RUN_DIR")
    loaded = []
    for run_dir in map(Path, run_dirs):
        record = read_results(run_dir)
        sources = record.get("models", {}).get("sources") or list(record["clean"])
        if not sources or sources[0] not in record["clean"]:
            raise InputError(f"{run_dir / 'results.json'}: no clean metrics of the attacked model {sources[:1]}")
        loaded.append(ComparedModel(sources[0], run_dir, record, sources[0]))
    names = [m.label for m in loaded]
    for m in loaded:
        if names.count(m.label) > 1:
            m.label = f"{m.model} ({m.run_dir.name})"
    return loaded


def _ratio(value: float | None, clean: float | None) -> float | None:
    return value / clean if value is not None and clean else None


def _transfer_row(model: ComparedModel) -> dict | None:
    """The headline setting made on the undefended model (any source other than the model itself)."""
    key = f"{model.headline}-from-{TRANSFER_SOURCE}"
    found = [r for r in model.record["results"] if r["key"] == key and r["target"] == model.model]
    return found[0] if found else None


def summary_rows(models: list[ComparedModel]) -> list[dict]:
    """One row per model (values as numbers or None; see SUMMARY_COLUMNS), wall time relative to the
    undefended models' mean training seconds per epoch when both are known."""

    def per_epoch(model: ComparedModel) -> float | None:
        training = model.training
        return training["train_seconds"] / training["epochs"] if training["train_seconds"] and training["epochs"] else None

    normal = [per_epoch(m) for m in models if m.training["defense"] == "none" and per_epoch(m)]
    reference = sum(normal) / len(normal) if normal else None
    rows = []
    for model in models:
        clean = model.clean.get("mAP")
        headline = model.headline
        robust, paper, transfer = headline and model.row(headline), model.row(PAPER_SETTING.key), _transfer_row(model)
        sanity = model.record.get("sanity")
        own_time = per_epoch(model)
        rows.append({
            "model": model.label, "run": str(model.run_dir), "defense": model.training["defense"],
            "clean_mAP": clean, "clean_rank1": model.clean.get("rank1"), "score": model.score,
            "headline": robust and robust["attack"],
            "robust_mAP": robust and robust["mAP"], "robust_ratio": _ratio(robust and robust["mAP"], clean),
            "paper_mAP": paper and paper["mAP"], "paper_ratio": _ratio(paper and paper["mAP"], clean),
            "transfer_mAP": transfer and transfer["mAP"], "cost": model.training["cost"],
            "wall_time": own_time / reference if own_time and reference else None,
            "sanity": None if not sanity else f"{sanity.get('passed', 0)}/{sanity.get('run', 0)}"
                      + (f" (failed: {', '.join(sanity['failed'])})" if sanity.get("failed") else ""),
        })  # fmt: skip
    return rows


def summary_cell(column: str, value) -> str:
    """Percent for metrics, two decimals for ratios, '-' when unknown."""
    if value is None:
        return "-"
    if column in PERCENT:
        return f"{100 * value:.1f}"
    if column == "score":
        return f"{value:.3f}"
    if column in ("robust_ratio", "paper_ratio", "wall_time"):
        return f"{value:.2f}"
    return str(value)


def setting_keys(models: list[ComparedModel]) -> list[tuple[str, str]]:
    """Every (setting key, source) evaluated on some model under test, in order of first appearance;
    source is "self" for white-box rows."""
    keys: dict[tuple[str, str], None] = {}
    for model in models:
        for row in model.record["results"]:
            if row["target"] == model.model:
                keys[(row["key"], "self" if row["source"] == model.model else row["source"])] = None
    return list(keys)


def map_matrix(models: list[ComparedModel]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the mAP (%) of every setting (rows) on every model (columns), clean first."""
    rows = [["clean", "-", *(format_cell("mAP", m.clean.get("mAP")) for m in models)]]
    for key, source in setting_keys(models):
        cells = [m.row(key, None if source == "self" else source) for m in models]
        rows.append([key, source, *(format_cell("mAP", r["mAP"]) if r else "-" for r in cells)])
    return ["setting", "source", *(m.label for m in models)], rows


def long_rows(models: list[ComparedModel]) -> list[dict]:
    """One row per model and setting (clean first), metrics as fractions, for the CSV."""
    rows = []
    for model in models:
        clean = model.clean.get("mAP")
        rows.append({"model": model.label, "run": str(model.run_dir), "key": "clean", "attack": "clean", "source": "-",
                     **{k: model.clean.get(k) for k in ("mAP", "rank1", "mINP")}, "relative_mAP": 1.0 if clean else None})  # fmt: skip
        for row in model.record["results"]:
            if row["target"] == model.model:
                entry = {column: row.get(column) for column in LONG_COLUMNS}
                rows.append({**entry, "model": model.label, "run": str(model.run_dir), "relative_mAP": _ratio(row["mAP"], clean)})
    return [{column: row.get(column) for column in LONG_COLUMNS} for row in rows]


def csv_text(models: list[ComparedModel]) -> str:
    """The long table as CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LONG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(long_rows(models))
    return buffer.getvalue()


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]) + "\n"


def summary_table(models: list[ComparedModel], skip: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows of the summary, without the columns in ``skip``; when the runs were not measured
    alike, a 'measured under' column after the model marks each row with its data set, subset, seed or pipeline."""
    rows, columns = summary_rows(models), [(c, title) for c, title in SUMMARY_COLUMNS if c not in skip]
    headers, cells = [title for _, title in columns], [[summary_cell(c, row[c]) for c, _ in columns] for row in rows]
    records = [m.record for m in models]
    differing = differing_conditions(records)
    if differing:
        headers.insert(1, "measured under")
        for row, conditions in zip(cells, condition_cells(records, differing)):
            row.insert(1, conditions)
    return headers, cells


def comparison_warning(models: list[ComparedModel]) -> str | None:
    """What the runs differ in (data set, subset, seed, pipeline), or None when they were measured alike."""
    return unlike_warning([m.label for m in models], [m.record for m in models])


def markdown_text(models: list[ComparedModel]) -> str:
    """The summary and the mAP of every setting as Markdown (metrics in percent)."""
    warning = comparison_warning(models)
    return ("# metricattack compare\n\n## Summary\n\n" + (f"**Warning:** {warning}.\n\n" if warning else "")
            + _markdown(*summary_table(models)) + "\n## mAP (%) of every setting\n\n" + _markdown(*map_matrix(models)))  # fmt: skip


def curve_panels(models: list[ComparedModel]) -> dict[tuple, list[tuple[str, list[float], list[float]]]]:
    """Per (attack, norm, side, goal, restarts): each model's white-box mAP-vs-eps curve, from its clean mAP at eps 0."""
    panels: dict[tuple, list] = {}
    for model in models:
        white = [r for r in model.record["results"] if r["source"] == model.model and r["target"] == model.model]
        for rows in series_of(white, "eps"):
            first = rows[0]
            panel = (first["attack"], first["norm"], first["side"], first["goal"], first.get("restarts"))
            eps = [0.0, *(r["eps"] for r in rows)]
            panels.setdefault(panel, []).append((model.label, eps, [model.clean.get("mAP", float("nan")), *(r["mAP"] for r in rows)]))
    return panels


def curves_png(models: list[ComparedModel]) -> bytes | None:
    """The overlaid curves, one panel per attack, as PNG bytes (None when no model has a curve)."""
    panels = curve_panels(models)
    if not panels:
        return None
    colours = {m.label: f"C{i % 10}" for i, m in enumerate(models)}
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = new_figure(figsize=(4.2 * columns, 3.3 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for axis, ((attack, norm, side, goal, restarts), lines) in zip(axes, panels.items()):
        for label, eps, values in lines:
            axis.plot(eps, [100 * v for v in values], marker="o", markersize=4, color=colours[label], label=label)
        axis.set_title(f"{attack} {norm} {side} {goal}" + (f", {restarts} restarts" if restarts else ""), fontsize=9)
        axis.set_xlabel("eps (pixels out of 255)")
        axis.set_ylabel("mAP (%)")
        axis.set_xlim(left=0)
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in axes[len(panels):]:
        axis.axis("off")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def sanity_html(models: list[ComparedModel]) -> str:
    """Every model's checks in one table (models as columns), then each model's warnings and details."""
    names = list(CHECK_TITLES)
    by_model = [{c["name"]: c for c in (m.record.get("sanity") or {}).get("checks", [])} for m in models]
    rows = [[CHECK_TITLES[name], *(status(checks.get(name)) for checks in by_model)] for name in names]
    parts = ["<h2>Sanity checks</h2>", table(["check", *(m.label for m in models)], rows, text_columns=1, sticky=[0])]
    for model in models:
        sanity = model.record.get("sanity")
        parts.append(f"<h3>{escape(model.label)}</h3>")
        if not sanity:
            parts.append('<p class="note">This run made no sanity checks (run it with --plan robust or --sanity-checks).</p>')
            continue
        details, attributes = sanity_rows(sanity)
        parts += [warnings(sanity), sanity_facts(sanity), table(["check", "result", "details"], details, 3, attributes)]
    parts.append(f'<p class="note">{escape(MEANING)}</p>')
    return "".join(parts)


def training_html(models: list[ComparedModel]) -> str:
    """How each model was trained (from its checkpoint's metadata, '-' when not recorded)."""
    rows = []
    for model in models:
        t = model.training
        options = ", ".join(f"{k} {v}" for k, v in t["options"].items()) or "-"
        rows.append([model.label, t["defense"], options, summary_cell("cost", t["cost"]), summary_cell("s", t["train_seconds"]),
                     summary_cell("epochs", t["epochs"]), t["train_command"] or "-"])  # fmt: skip
    headers = ["model", "defense", "options", "inner steps + 1", "training seconds", "epochs", "training command"]
    return "<h2>Training</h2>" + table(headers, rows, text_columns=len(headers), sticky=[0], wrap=[2, len(headers) - 1])


def compare_html(models: list[ComparedModel], figure: bytes | None) -> str:
    """The whole page."""
    summary_headers, summary = summary_table(models, skip=("run",))  # the runs are listed above
    wrap = [i for i, title in enumerate(summary_headers) if title in ("measured under", "sanity checks")]
    warning = comparison_warning(models)
    warning = f'<p class="warning">Warning: {escape(warning)}.</p>' if warning else ""
    matrix_headers, matrix = map_matrix(models)
    if figure is None:
        image = '<p class="note">No model was attacked at several eps, so there is no curve to plot.</p>'
    else:
        source = f"data:image/png;base64,{base64.b64encode(figure).decode()}"
        image = f'<figure><img src="{source}" alt="mAP against eps, every model"></figure>'
    runs = facts_table([(m.label, f"{m.run_dir} ({m.record['dataset'].get('name', '?')}, {m.record.get('command', '-')})")
                        for m in models])  # fmt: skip
    note = (
        '<p class="note">Metrics in percent. Robustness score: the mean over the run\'s non-targeted white-box (eps, side) '
        "cells of the worst attacked mAP divided by the clean mAP (1: no attack hurt; compare runs of one plan). Headline "
        "eps 8: the plan's white-box gallery attack at eps 8 (auto for --plan robust; PGD-50, step eps/4, 5 restarts, "
        "for robust-pgd); I-FGSM eps 5: the paper's setting; transfer: the "
        "headline attack made on the undefended bundled model; robust / clean and paper / clean: attacked mAP divided by "
        "the model's own clean mAP; inner steps + 1: forward-backward passes per training image relative to normal "
        "training; wall time vs normal: training seconds per epoch over the undefended models' (in this comparison).</p>"
    )
    body = "".join([
        "<h1>metricattack compare</h1>",
        f'<p class="note">{len(models)} models, compared {escape(time.strftime("%Y-%m-%d %H:%M:%S"))}</p>',
        "<h2>Runs</h2>", runs,
        "<h2>Summary</h2>", warning, note, table(summary_headers, summary, summary_headers.index("defense") + 1, sticky=[0], wrap=wrap),
        "<h2>mAP against eps</h2>", image,
        "<h2>mAP of every setting</h2>", table(matrix_headers, matrix, text_columns=2, sticky=[0, 1]),
        training_html(models), sanity_html(models),
    ])  # fmt: skip
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>metricattack compare</title>'
            f"<style>{STYLE}</style></head>\n<body>{body}</body></html>\n")  # fmt: skip


def write_compare(run_dirs: list[str | Path], out_dir: str | Path) -> Path:
    """Write ``compare.html``, ``compare.md``, ``compare.csv`` (and ``curves.png``) into ``out_dir``; return the page."""
    return write_models(load_runs(run_dirs), out_dir)


def write_models(models: list[ComparedModel], out_dir: str | Path) -> Path:
    """``write_compare`` for runs already loaded by ``load_runs``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file (expected a folder for the comparison)")
    figure = curves_png(models)
    if figure is not None:
        atomic_write_bytes(out_dir / "curves.png", figure)
    atomic_write_text(out_dir / "compare.csv", csv_text(models))
    atomic_write_text(out_dir / "compare.md", markdown_text(models))
    return atomic_write_text(out_dir / "compare.html", compare_html(models, figure))
