"""The run's report.html: settings, the table, curves, robustness summary, ranking lists, examples.

Self-contained and offline: plain HTML with inline CSS; figures are PNGs in ``figures/`` beside it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from metricattack.atomic import atomic_write_text
from metricattack.report.plots import plot_curves, plot_pairs, plot_ranking
from metricattack.report.results import RESULT_COLUMNS, format_cell, read_results, table_rows
from metricattack.report.summary import curves, eps_at_half, relative_auc

MAX_EXAMPLE_SETTINGS = 6
PREFERRED_EPS = 5.0

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.clean td { background: #eef7ee; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; }
code { background: #f3f3f3; padding: 0 .3em; } .note { color: #666; font-size: .9em; }
"""


def table(headers: list[str], rows: list[list[str]], text_columns: int = 0, row_classes: list[str] | None = None) -> str:
    """An HTML table; the first ``text_columns`` columns are left-aligned text. Cells are escaped here."""

    def cells(values: list[str], tag: str) -> str:
        text = ' class="text"'
        return "".join(
            f"<{tag}{text if i < text_columns else ''}>{escape(str(v))}</{tag}>" for i, v in enumerate(values)
        )

    classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{c}">{cells(r, "td")}</tr>' for r, c in zip(rows, classes))
    return f"<table><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}</tbody></table>"


def settings_section(record: dict) -> str:
    """What was attacked, with what, and how it was measured."""
    data = record["dataset"]
    targets = record.get("models", {}).get("targets", {})
    models = [
        [name, spec.get("arch", "?"), "x".join(map(str, spec.get("input_size", []))), spec.get("metric", "?"),
         "yes" if spec.get("normalize") else "no"]
        for name, spec in targets.items()
    ]  # fmt: skip
    facts = [
        ["data set", f"{data['name']} ({data.get('root', '')})"],
        ["query / gallery images", f"{data.get('num_query', '?')} / {data.get('num_gallery', '?')}"],
        ["attacking model(s)", ", ".join(record.get("models", {}).get("sources", [])) or "-"],
        ["seed", str(record.get("seed"))],
        ["device", str(record.get("device", "-"))],
        ["adversarial images rounded to 8 bits", "yes" if record.get("quantize", True) else "no"],
        ["average precision", str(record.get("average_precision", "standard"))],
        ["command", record.get("command", "-")],
    ]
    return (
        "<h2>Settings</h2>" + table(["", ""], facts, text_columns=2)
        + (table(["model", "architecture", "input", "distance", "L2-normalised"], models, text_columns=5) if models else "")
    )  # fmt: skip


def results_section(record: dict) -> str:
    """Clean and attacked metrics (percent)."""
    rows = table_rows(record)
    cells = [[format_cell(c, row[c]) for c in RESULT_COLUMNS] for row in rows]
    classes = ["clean" if row["attack"] == "clean" else "" for row in rows]
    note = '<p class="note">Metrics in percent; eps and step size in pixels out of 255; seconds: time to make the images.</p>'
    return "<h2>Clean vs attacked</h2>" + note + table(list(RESULT_COLUMNS), cells, text_columns=0, row_classes=classes)


def curves_section(record: dict, run_dir: Path) -> str:
    """The curves figure and the robustness summary of each curve."""
    found = curves(record)
    rows = []
    for curve in found:
        half = eps_at_half(curve)
        rows.append([curve.label, ", ".join(f"{e:g}" for e in curve.eps), f"{100 * curve.clean_mAP:.1f}",
                     f"{relative_auc(curve):.3f}", "not reached" if half is None else f"{half:.2f}"])  # fmt: skip
    summary = table(["attack", "eps measured", "clean mAP", "relative AUC", "eps at half mAP"], rows, text_columns=2)
    explain = (
        '<p class="note">Relative AUC: area under mAP(eps) from eps 0 (clean) to the largest eps, divided by '
        "clean mAP x largest eps (1: unharmed, 0: broken at once). Eps at half mAP: where mAP first falls to "
        "half its clean value, interpolated linearly.</p>"
    )
    if not any(len(c.eps) > 1 for c in found):
        return "<h2>Robustness</h2>" + '<p class="note">No attack was run at several eps, so there is no curve.</p>' + summary + explain
    plot_curves([c for c in found if len(c.eps) > 1], run_dir / "figures" / "curves.png")
    figure = '<figure><img src="figures/curves.png" alt="mAP and rank-1 against eps"></figure>'
    return "<h2>Robustness</h2>" + figure + summary + explain


def example_settings(record: dict) -> list[str]:
    """Which settings' examples to show: per curve (a setting without its eps), the eps nearest 5."""
    by_curve: dict[tuple, dict] = {}
    for row in record["results"]:
        if row.get("key") not in record.get("examples", {}):
            continue
        curve = (row["attack"], row["norm"], row["side"], row["goal"], row["source"])
        best = by_curve.get(curve)
        if best is None or abs(row["eps"] - PREFERRED_EPS) < abs(best["eps"] - PREFERRED_EPS):
            by_curve[curve] = row
    return [row["key"] for row in by_curve.values()][:MAX_EXAMPLE_SETTINGS]


def examples_section(record: dict, run_dir: Path) -> str:
    """Ranking lists before / after and adversarial examples for a few settings."""
    keys = example_settings(record)
    if not keys:
        return "<h2>Ranking lists</h2><p class=\"note\">This run saved no examples.</p>"
    parts = ["<h2>Ranking lists</h2>",
             '<p class="note">Each figure: the query, then its top-10 gallery before (top row) and after (bottom row) '
             'the attack. Green: true match, red: false match, blue: the target identity; "adv": an adversarial '
             "image.</p>"]  # fmt: skip
    pairs_parts = ["<h2>Adversarial examples</h2>",
                   '<p class="note">Original, adversarial, and the perturbation amplified ten times around grey.</p>']
    for key in keys:
        example = record["examples"][key]
        parts.append(f"<h3>{escape(key)}</h3>")
        for number, ranking in enumerate(example["rankings"]):
            name = f"ranking-{key}-{number}.png"
            plot_ranking(ranking, run_dir, run_dir / "figures" / name, f"{key}, query pid {ranking['pid']}")
            parts.append(f'<figure><img src="figures/{escape(name)}" alt="ranking list {number} of {escape(key)}"></figure>')
        if example.get("pairs"):
            name = f"pairs-{key}.png"
            plot_pairs(example["pairs"], run_dir, run_dir / "figures" / name)
            pairs_parts.append(f'<figure><img src="figures/{escape(name)}" alt="adversarial examples of {escape(key)}">'
                               f"<figcaption>{escape(key)}</figcaption></figure>")  # fmt: skip
    return "".join(parts) + "".join(pairs_parts)


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` and its figures from results.json and the saved examples."""
    run_dir = Path(run_dir)
    record = read_results(run_dir)
    (run_dir / "figures").mkdir(exist_ok=True)
    title = f"metricattack report: {record['dataset']['name']}"
    body = "".join(
        [
            f"<h1>{escape(title)}</h1>",
            f'<p class="note">metricattack {escape(str(record.get("metricattack_version", "")))}, '
            f"{escape(str(record.get('created', '')))}</p>",
            settings_section(record),
            results_section(record),
            curves_section(record, run_dir),
            examples_section(record, run_dir),
        ]
    )
    page = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>' \
           f"<style>{STYLE}</style></head><body>{body}</body></html>\n"  # fmt: skip
    return atomic_write_text(run_dir / "report.html", page)
