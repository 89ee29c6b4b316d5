"""The run's report.html: settings, the table, curves, robustness summary, ranking lists, adversarial pairs.

Self-contained and offline: plain HTML with inline CSS, no script; figures are PNGs in ``figures/``
beside it, referenced by relative path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape
from pathlib import Path
from urllib.parse import quote

from metricattack.system.atomic import atomic_write_text
from metricattack.report.plots import AMPLIFY, plot_curves, plot_pairs, plot_ranking
from metricattack.experiment.results import (
    DISTINGUISHING_COLUMNS, RESULT_COLUMNS, clean_rows, distinguishing_columns, format_cell, read_results, table_rows,
)
from metricattack.report.sanity import MEANING, sanity_facts, sanity_rows, warnings
from metricattack.report.summary import curves, eps_at_half, relative_auc
from metricattack.report.threats import threat_sections

MAX_EXAMPLE_SETTINGS = 6
PREFERRED_EPS = 5.0
HEADERS = {"step_size": "step", "target_pid": "target pid", "target": "model", "target_success_rank1": "target@1",
           "target_success_rank5": "target@5", "num_attacked": "attacked",
           "clean_match_rank_mean": "match rank before (mean)", "match_rank_mean": "match rank (mean)",
           "clean_match_rank_median": "match rank before (median)", "match_rank_median": "match rank (median)",
           "top10_overlap": "top-10 overlap", "rank1_changed": "rank-1 changed", "perturbation_linf": "L∞",
           "perturbation_l2": "L2", "psnr": "PSNR (dB)", "ssim": "SSIM"}  # short column titles of the table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.5em 0 .3em; font-family: ui-monospace, monospace; }
.scroll { overflow-x: auto; }
table { border-collapse: separate; border-spacing: 0; border: solid #ddd; border-width: 1px 0 0 1px; font-size: .8em; margin: .5em 0; }
th, td { border: solid #ddd; border-width: 0 1px 1px 0; padding: .2em .45em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
thead th { white-space: normal; vertical-align: bottom; }
td.text, th.text { text-align: left; }
td.wrap { white-space: normal; overflow-wrap: break-word; font-family: ui-monospace, monospace; }
.sticky { position: sticky; z-index: 1; font-family: ui-monospace, monospace; }
td.sticky { background: #fff; }
thead th.sticky { white-space: nowrap; }
@media (max-width: 800px) { .sticky { position: static; } }
tbody tr:nth-child(even) td { background: #fafafa; }
tbody tr.clean td { background: #eef7ee; font-weight: 600; }
img { max-width: 100%; height: auto; }
figure { margin: .8em 0; }
.note { color: #555; font-size: .9em; }
.warning { background: #fdecea; border-left: 4px solid #d7191c; padding: .4em .8em; }
tbody tr.pass td:nth-child(2) { color: #1a9641; font-weight: 600; }
tbody tr.fail td:nth-child(2) { color: #d7191c; font-weight: 600; }
tr.pass td, tr.fail td, tr.skipped td { white-space: normal; }
"""


def table(
    headers: list[str], rows: list[list[str]], text_columns: int = 0, row_attributes: list[dict] | None = None,
    sticky: Iterable[int] = (), wrap: Iterable[int] = (),
) -> str:
    """An HTML table; the first ``text_columns`` columns are left-aligned; ``row_attributes``: per row, HTML
    attributes of its <tr>; the ``sticky`` columns (what a row is) stay in view while the table scrolls sideways;
    the ``wrap`` columns' cells wrap. Everything is escaped here."""
    offsets = sticky_offsets(headers, rows, sticky)
    wrap = set(wrap)

    def cell(i: int, value: str, tag: str) -> str:
        classes = " ".join(["text"] * (i < text_columns) + ["sticky"] * (i in offsets) + ["wrap"] * (i in wrap and tag == "td"))
        opening = tag + (f' class="{classes}"' if classes else "") + (f' style="left: {offsets[i]}"' if i in offsets else "")
        text = escape(str(value)) if tag == "td" else escape(str(value)).replace("-", "\u2011")  # titles wrap at spaces only
        return f"<{opening}>{text}</{tag}>"

    def cells(values: list[str], tag: str) -> str:
        return "".join(cell(i, v, tag) for i, v in enumerate(values))

    def attributes(values: dict) -> str:
        return "".join(f' {name}="{escape(str(value))}"' for name, value in values.items())

    body = "".join(f"<tr{attributes(a)}>{cells(r, 'td')}</tr>" for r, a in zip(rows, row_attributes or [{}] * len(rows)))
    return f'<div class="scroll"><table><thead><tr>{cells(headers, "th")}</tr></thead><tbody>{body}</tbody></table></div>'


def sticky_offsets(headers: list[str], rows: list[list[str]], columns: Iterable[int]) -> dict[int, str]:
    """The CSS ``left`` of each sticky column: the width of the sticky columns before it. Sticky cells are set in a
    monospace font, so a column is as wide as its longest text in ``ch``, plus its padding (.45em a side) and border."""
    offsets, chars = {}, 0
    for count, column in enumerate(sorted(set(columns))):
        offsets[column] = f"calc({chars}ch + {0.9 * count:g}em + {count}px)"
        chars += max(len(str(values[column])) for values in [headers, *rows])
    return offsets


def facts_table(facts: list[tuple[str, str]]) -> str:
    """A two-column name / value table whose values may wrap (long paths and commands)."""
    rows = "".join(f'<tr><th class="text">{escape(k)}</th><td class="text wrap">{escape(v)}</td></tr>' for k, v in facts)
    return f"<table><tbody>{rows}</tbody></table>"


def image(src: str, alt: str) -> str:
    """A figure showing the image at a relative path (URL-quoted and escaped)."""
    return f'<figure><img src="{escape(quote(src))}" alt="{escape(alt)}"></figure>'


def file_name(text: str) -> str:
    """A setting key made safe as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def settings_section(record: dict) -> str:
    """What was attacked, with what, and how it was measured."""
    data = record["dataset"]
    models = record.get("models", {})
    facts = [
        ("data set", f"{data.get('name', '?')} ({data.get('root', '')})"),
        ("query images / identities", f"{data.get('num_query', '?')} / {data.get('num_query_ids', '?')}"),
        ("gallery images", str(data.get("num_gallery", "?"))),
        ("attacking model(s)", ", ".join(models.get("sources", [])) or "-"),
        ("seed", str(record.get("seed", "-"))),
        ("device", str(record.get("device", "-"))),
        ("adversarial images rounded to 8 bits", "yes" if record.get("quantize", True) else "no"),
        ("average precision", str(record.get("average_precision", "standard"))),
        ("pipelines", pipelines_fact(record)),
        ("command", str(record.get("command", "-"))),
    ]
    specs = [
        [name, spec.get("arch", "?"), "x".join(map(str, spec.get("input_size", []))), str(spec.get("embedding_dim") or "-"),
         "yes" if spec.get("bnneck") else "no", spec.get("metric", "?"), "yes" if spec.get("normalize") else "no"]
        for name, spec in models.get("targets", {}).items()
    ]  # fmt: skip
    headers = ["model", "architecture", "input (HxW)", "embedding", "BNNeck", "distance", "L2-normalised"]
    return "<h2>Settings</h2>" + facts_table(facts) + (table(headers, specs, text_columns=2) if specs else "")


def pipelines_fact(record: dict) -> str:
    """The pipelines evaluated, the deployed one first, and which steps the attack went through."""
    names = [pipeline.get("name", "?") for pipeline in record.get("pipelines", [])] or ["plain"]
    flip = record.get("pipelines", [{}])[0].get("flip", False)
    attacked = "through its flip averaging" if flip else "without flip averaging"
    return (
        f"{', '.join(names)} (the first is the deployed pipeline: the attack was made {attacked}; query expansion "
        "and re-ranking are not differentiable and are applied to the attacked images at evaluation time only)"
    )


def results_section(record: dict) -> str:
    """Clean and attacked metrics, every row of the record."""
    rows = table_rows(record)
    cells = [[format_cell(column, row[column]) for column in RESULT_COLUMNS] for row in rows]
    attributes = [{"class": "clean", "data-key": "clean"}] * len(clean_rows(record))  # table_rows: clean rows first
    attributes += [{"data-key": row.get("key", "")} for row in record["results"]]
    note = (
        '<p class="note">Metrics in percent; eps and step in pixels out of 255; source: the model attacked, '
        "model: the model evaluated; target@1 / target@5: share of queries whose top-1 / top-5 holds the target "
        "identity (targeted attacks); attacked: images changed; seconds: time to make them. "
        "pipeline: what the system does after the model (flip: features averaged with the mirrored image's; qeN: "
        "average query expansion over the top N; rerank: k-reciprocal re-ranking, k1 20, k2 6, lambda 0.3); the "
        "attack goes through flip averaging when the first pipeline has it, while query expansion and re-ranking "
        "are applied to the attacked images at evaluation time only. Over the queries with a true match: match "
        "rank: rank of the first true match before the attack and on this row (mean, median); top-10 overlap: mean "
        "share of the clean top-10 still in the attacked top-10; rank-1 changed: share of queries whose rank-1 "
        "image changed. Attacked images against their originals, after 8-bit rounding: L∞ and L2 in pixels out of "
        "255 (mean per image), PSNR over all attacked pixels, SSIM (mean per image; 1: identical).</p>"
    )
    headers = [HEADERS.get(column, column) for column in RESULT_COLUMNS]
    table_html = table(headers, cells, text_columns=1, row_attributes=attributes, sticky=map(RESULT_COLUMNS.index, identity_columns(rows)))
    return "<h2>Clean vs attacked</h2>" + note + table_html


def identity_columns(rows: list[dict]) -> list[str]:
    """The columns that say what a row of the results table is: attack, eps, side, goal, and whichever of the model,
    pipeline and the setting's other fields tell apart rows that agree on those."""
    shown = ("attack", "eps", "side", "goal")
    candidates = tuple(c for c in ("target", "pipeline", *DISTINGUISHING_COLUMNS) if c in RESULT_COLUMNS and c not in shown)
    return [*shown, *distinguishing_columns(rows, shown, candidates)]


def curves_section(record: dict, run_dir: Path) -> str:
    """The curves figure (when some attack ran at several eps) and the robustness summary of each curve."""
    found = curves(record)
    if not found:
        return '<h2>Robustness</h2><p class="note">No attack results.</p>'
    if any(len(curve.eps) > 1 for curve in found):
        plot_curves(record, run_dir / "figures" / "curves.png")
        figure = image("figures/curves.png", "mAP and rank-1 against eps")
    else:
        figure = '<p class="note">No attack was run at several eps, so there is no curve to plot.</p>'
    rows = []
    for curve in found:
        auc, half = relative_auc(curve), eps_at_half(curve)
        rows.append([curve.label, ", ".join(f"{e:g}" for e in curve.eps), f"{100 * curve.clean_mAP:.1f}",
                     "-" if auc is None else f"{auc:.3f}", "not reached" if half is None else f"{half:.2f}"])  # fmt: skip
    explain = (
        '<p class="note">Relative AUC: the area under mAP(eps) by trapezoids from eps 0 (the clean mAP) to the '
        "largest eps measured, divided by clean mAP x largest eps (1: unharmed, near 0: broken at once); it depends "
        "on the eps range, so compare curves measured over the same eps. Eps at half mAP: where mAP first falls to "
        "half its clean value, interpolated linearly between measured points.</p>"
    )
    headers = ["attack", "eps measured", "clean mAP", "relative AUC", "eps at half mAP"]
    return "<h2>Robustness</h2>" + score_table(record) + figure + table(headers, rows, text_columns=2) + explain


def cell_triples(cells: list) -> list:
    """A score's cells as (norm, eps, side), also from records that stored (eps, side)."""
    return [cell if len(cell) == 3 else ["linf", *cell] for cell in cells]


def score_table(record: dict) -> str:
    """Each self-attacked model's robustness score with its clean mAP and cells (empty when there is none)."""
    scores = record.get("robustness") or {}
    if not scores:
        return ""
    rows = [[model, f"{s['score']:.3f}", f"{100 * s['clean_mAP']:.1f}", ", ".join(f"{eps:g}/{side}" + ("" if norm == "linf" else f" ({norm})") for norm, eps, side in cell_triples(s["cells"]))]
            for model, s in scores.items()]  # fmt: skip
    explain = ('<p class="note">Robustness score: the mean over the (eps, side) cells of the worst non-targeted white-box '
               "mAP divided by the clean mAP (1: no attack hurt the ranking; 0: every cell destroyed). Compare scores of "
               "runs of the same plan on the same data.</p>")  # fmt: skip
    return table(["model", "robustness score", "clean mAP", "cells (eps/side)"], rows, text_columns=1) + explain


def sanity_section(record: dict) -> str:
    """The robust evaluation's sanity checks (nothing when the run made none): warnings first, then every check."""
    if not record.get("sanity"):
        return ""
    rows, attributes = sanity_rows(record["sanity"])
    return ("<h2>Sanity checks</h2>" + warnings(record["sanity"]) + sanity_facts(record["sanity"])
            + table(["check", "result", "details"], rows, text_columns=3, row_attributes=attributes)
            + f'<p class="note">{escape(MEANING)}</p>')  # fmt: skip


def example_settings(record: dict) -> list[str]:
    """Which settings' examples to show: for each curve that saved examples, the setting with eps nearest 5;
    curves of a new (side, goal) first, so query-side and targeted attacks are not crowded out; at most 6."""
    chosen: dict[tuple, dict] = {}
    for row in record["results"]:
        if row.get("key") not in record.get("examples", {}):
            continue
        curve = (row["attack"], row["norm"], row["side"], row["goal"], row["source"], row["target"])
        best = chosen.get(curve)
        if best is None or abs(row["eps"] - PREFERRED_EPS) < abs(best["eps"] - PREFERRED_EPS):
            chosen[curve] = row
    seen: set[tuple] = set()
    first, rest = [], []
    for row in chosen.values():
        (rest if (row["side"], row["goal"]) in seen else first).append(row["key"])
        seen.add((row["side"], row["goal"]))
    return list(dict.fromkeys(first + rest))[:MAX_EXAMPLE_SETTINGS]  # rows of several target models share a key


def examples_section(record: dict, run_dir: Path) -> str:
    """Ranking lists before / after for every example of the chosen settings, then their adversarial pairs."""
    keys = example_settings(record)
    if not keys:
        return '<h2>Ranking lists</h2><p class="note">This run saved no examples.</p>'
    rankings = [
        "<h2>Ranking lists</h2>",
        f'<p class="note">Settings shown: for each attack curve, the eps nearest {PREFERRED_EPS:g}; at most '
        f"{MAX_EXAMPLE_SETTINGS} settings, those of a side and goal not yet shown first. Each figure: the query, then its top-10 "
        "gallery before (top row) and after (bottom row) the attack. Green frame: true match, red: false match, "
        'blue: the target identity; "adv": an adversarial image.</p>',
    ]
    pairs = [
        "<h2>Adversarial examples</h2>",
        f'<p class="note">Original, adversarial, and the perturbation amplified: 0.5 + {AMPLIFY} x (adversarial - '
        "original), clipped to [0, 1], so grey is no change; max: the largest change in pixels out of 255.</p>",
    ]
    for key in keys:
        example = record["examples"][key]
        rankings.append(f"<h3>{escape(key)}</h3>")
        for number, ranking in enumerate(example.get("rankings", [])):
            name = f"figures/ranking-{file_name(key)}-{number}.png"
            plot_ranking(ranking, run_dir, run_dir / name, f"{key}, query pid {ranking['pid']}")
            rankings.append(image(name, f"ranking list {number + 1} of {key}"))
        if example.get("pairs"):
            name = f"figures/pairs-{file_name(key)}.png"
            plot_pairs(example["pairs"], run_dir, run_dir / name)
            pairs += [f"<h3>{escape(key)}</h3>", image(name, f"adversarial examples of {key}")]
    return "".join(rankings) + ("".join(pairs) if len(pairs) > 2 else "")


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` and its figures in ``run_dir/figures/``; return the report's path."""
    run_dir = Path(run_dir)
    record = read_results(run_dir)
    title = f"metricattack report: {record['dataset']['name']}"
    subtitle = f"metricattack {record.get('metricattack_version', '?')}, run created {record.get('created', '?')}"
    body = "".join([
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">{escape(subtitle)}</p>',
        settings_section(record),
        results_section(record),
        sanity_section(record),
        curves_section(record, run_dir),
        threat_sections(record, run_dir, table, image),
        examples_section(record, run_dir),
    ])  # fmt: skip
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>{body}</body></html>\n"
    )
    return atomic_write_text(run_dir / "report.html", page)
