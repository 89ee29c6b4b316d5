"""report.html from a fake run directory: content, images, figures, edge cases."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metricattack.errors import InputError
from metricattack.report.html import build_report, example_settings, identity_columns, sticky_offsets, table

CLEAN = {"mAP": 0.8, "mINP": 0.5, "rank1": 0.9, "rank5": 0.95, "rank10": 0.97, "num_queries": 12, "num_skipped": 0}


def result(attack: str, eps: float, side: str, goal: str, mAP: float) -> dict:
    """A results.json row (the sweep's schema)."""
    key = f"{attack}-linf-eps{eps:g}-{side}-{goal}"
    row = {"key": key, "attack": attack, "eps": float(eps), "side": side, "goal": goal, "norm": "linf", "steps": 4,
           "step_size": None, "target_pid": None, "source": "default", "target": "default", "mAP": mAP,
           "mINP": mAP / 2, "rank1": mAP + 0.1, "rank5": mAP + 0.15, "rank10": mAP + 0.17, "num_queries": 12,
           "num_skipped": 0, "num_attacked": 20, "seconds": 1.5}  # fmt: skip
    if goal == "targeted":
        row.update(target_success_rank1=0.3, target_success_rank5=0.5)
    return row


RESULTS = [
    result("ifgsm", 2, "gallery", "untargeted", 0.6),
    result("ifgsm", 4, "gallery", "untargeted", 0.3),
    result("ifgsm", 8, "gallery", "untargeted", 0.1),
    result("fgsm", 4, "gallery", "untargeted", 0.5),
    result("ifgsm", 4, "query", "untargeted", 0.45),
    result("ifgsm", 8, "query", "targeted", 0.2),
]


def save_image(path: Path, seed: int) -> None:
    """A small random RGB PNG (32x16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def save_adversarial(original: Path, path: Path, seed: int) -> None:
    """The original PNG plus a perturbation of at most 4/255."""
    pixels = np.asarray(Image.open(original), dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-4, 5, pixels.shape)
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(path)


def write_examples(run_dir: Path, row: dict, count: int = 2) -> dict:
    """Example images and their description for one setting, as write_examples lays them out."""
    folder = Path("examples") / row["key"]
    targeted = row["goal"] == "targeted"

    def image(side: str, index: int, adversarial: bool) -> str:
        name = folder / f"{side[0]}{index}.png"
        if not (run_dir / name).exists():
            save_image(run_dir / name, index + (1000 if side == "query" else 0))
        if not adversarial:
            return str(name)
        adv = folder / f"{side[0]}{index}_adv.png"
        save_adversarial(run_dir / name, run_dir / adv, index)
        return str(adv)

    def entry(index: int, query_pid: int, after: bool) -> dict:
        pid = 300 + index % 5
        attacked = after and row["side"] == "gallery"
        return {"index": index, "pid": pid, "camid": 1, "match": pid == query_pid, "attacked": attacked,
                "target": targeted and pid == 304, "image": image("gallery", index, attacked)}  # fmt: skip

    rankings = []
    for query in range(count):
        pid = 300 + query
        rankings.append({
            "index": query, "pid": pid, "camid": 0, "target_pid": 304 if targeted else None,
            "image": image("query", query, False), "attacked_image": image("query", query, row["side"] == "query"),
            "clean_top": [entry(i, pid, False) for i in range(10)],
            "attacked_top": [entry(i, pid, True) for i in range(10, 0, -1)],
        })  # fmt: skip
    side = row["side"]
    pairs = [{"side": side, "pid": 300 + i, "original": image(side, i, False), "adversarial": image(side, i, True),
              "target_pid": 304 if targeted else None} for i in range(2)]  # fmt: skip
    return {"target_model": "default", "rankings": rankings, "pairs": pairs}


def write_run(run_dir: Path, results: list[dict] = RESULTS, examples: bool = True, **extra) -> Path:
    """A run directory as ``metricattack run`` writes it: results.json and example PNGs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "metricattack_version": "0.1.0", "created": "2024-01-01T00:00:00+0000", "command": "metricattack run --out x",
        "seed": 0, "device": "cpu", "quantize": True, "average_precision": "standard",
        "dataset": {"name": "synthetic", "root": "/data/synthetic", "num_query": 12, "num_gallery": 20,
                    "num_query_ids": 6},
        "models": {"sources": ["default"], "targets": {"default": {"arch": "compact", "input_size": [32, 16],
                   "embedding_dim": None, "bnneck": True, "metric": "euclidean", "normalize": True}}},
        "clean": {"default": CLEAN},
        "results": results,
        "examples": {row["key"]: write_examples(run_dir, row) for row in results} if examples else {},
        **extra,
    }  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(record, indent=2))
    return run_dir


class Page(HTMLParser):
    """The parts of report.html the tests look at: image sources, table rows by data-key, external links."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[str] = []
        self.row_keys: list[str] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "tr" and "data-key" in attributes:
            self.row_keys.append(attributes["data-key"])
        self.links += [value for name, value in attrs if name in ("href", "src") and value]


def is_png(path: Path) -> bool:
    with Image.open(path) as image:
        image.verify()
        return image.format == "PNG"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A fake run with examples for every setting, and its report."""
    return build_report(write_run(tmp_path_factory.mktemp("run") / "run"))


def test_report_is_written_next_to_results(report):
    assert report.name == "report.html" and report.is_file()
    assert (report.parent / "figures" / "curves.png").is_file()
    assert not list(report.parent.glob("**/*.tmp"))


def test_table_has_the_clean_row_and_every_attack(report):
    text = report.read_text()
    page = Page(text)
    assert page.row_keys == ["clean"] + [row["key"] for row in RESULTS]
    assert "<td>80.0</td>" in text  # clean mAP in percent
    assert "<td>30.0</td>" in text  # target_success_rank1 of the targeted row


def test_every_image_exists_and_is_a_png(report):
    page = Page(report.read_text())
    assert page.images, "no images in the report"
    for src in page.images:
        assert not src.startswith(("/", "http:", "https:", "file:")), src
        assert is_png(report.parent / src), src
    figures = sorted(path.name for path in (report.parent / "figures").iterdir())
    assert sorted(Path(src).name for src in page.images) == figures
    for figure in figures:
        assert is_png(report.parent / "figures" / figure)


def test_report_is_self_contained(report):
    page = Page(report.read_text())
    assert not {"script", "link", "iframe"} & page.tags
    assert all(link.startswith("figures/") for link in page.links)


def test_ranking_lists_and_pairs_of_the_chosen_settings(report):
    text = report.read_text()
    shown = ["ifgsm-linf-eps4-gallery-untargeted", "ifgsm-linf-eps4-query-untargeted",
             "ifgsm-linf-eps8-query-targeted", "fgsm-linf-eps4-gallery-untargeted"]  # fmt: skip
    for key in shown:
        assert f"figures/ranking-{key}-0.png" in text and f"figures/ranking-{key}-1.png" in text
        assert f"figures/pairs-{key}.png" in text
    assert "ifgsm-linf-eps8-gallery-untargeted-0" not in text  # eps 4 stands for that curve


def test_robustness_summary_numbers(report):
    text = report.read_text()
    # the I-FGSM gallery curve: relative AUC 3.1 / 6.4, half mAP at 2 + 4/3 (see test_summary)
    assert "<td>0.484</td><td>3.33</td>" in text
    # FGSM at one eps: 2.6 / 3.2, never below half
    assert "<td>0.812</td><td>not reached</td>" in text


def test_settings_are_shown(report):
    text = report.read_text()
    for fact in ("synthetic", "/data/synthetic", "12 / 6", "compact", "32x16", "metricattack run --out x", "standard"):
        assert fact in text, fact


def test_example_settings_prefer_eps_5_and_new_sides_and_goals():
    rows = [result(attack, eps, side, goal, 0.1)
            for attack in ("ifgsm", "fgsm", "mifgsm", "pgd")
            for side, goal in (("gallery", "untargeted"), ("query", "targeted"))
            for eps in (3, 5, 8)]  # fmt: skip
    record = {"results": rows, "examples": {row["key"]: {} for row in rows}}
    chosen = example_settings(record)
    assert chosen == ["ifgsm-linf-eps5-gallery-untargeted", "ifgsm-linf-eps5-query-targeted",
                      "fgsm-linf-eps5-gallery-untargeted", "fgsm-linf-eps5-query-targeted",
                      "mifgsm-linf-eps5-gallery-untargeted", "mifgsm-linf-eps5-query-targeted"]  # fmt: skip
    record["examples"] = {rows[0]["key"]: {}}
    assert example_settings(record) == [rows[0]["key"]]


def test_single_eps_without_examples_still_renders(tmp_path):
    run_dir = write_run(tmp_path / "run", [result("ifgsm", 5, "gallery", "untargeted", 0.2)], examples=False)
    text = build_report(run_dir).read_text()
    assert "no curve to plot" in text and "saved no examples" in text
    assert not (run_dir / "figures" / "curves.png").exists()
    assert Page(text).row_keys == ["clean", "ifgsm-linf-eps5-gallery-untargeted"]


def test_no_results_still_renders(tmp_path):
    text = build_report(write_run(tmp_path / "run", [], examples=False)).read_text()
    assert "No attack results" in text and Page(text).row_keys == ["clean"]


def test_text_is_escaped(tmp_path):
    run_dir = write_run(tmp_path / "run", RESULTS[:1], examples=False, command="metricattack run --out '<b>&x'")
    text = build_report(run_dir).read_text()
    assert "<b>" not in text and "&lt;b&gt;&amp;x" in text


def test_missing_run_dir_or_results_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="results.json: not found"):
        build_report(tmp_path / "nowhere")
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(InputError, match="results.json: not valid"):
        build_report(tmp_path)


def test_missing_example_image_is_an_input_error(tmp_path):
    run_dir = write_run(tmp_path / "run", RESULTS[:1])
    (run_dir / "examples" / RESULTS[0]["key"] / "g3.png").unlink()
    with pytest.raises(InputError, match="g3.png: cannot read the example image"):
        build_report(run_dir)


def test_transfer_to_a_second_model_renders(tmp_path):
    transferred = [{**row, "target": "other", "mAP": row["mAP"] + 0.1} for row in RESULTS[:3]]
    run_dir = write_run(tmp_path / "run", RESULTS[:3] + transferred)
    record = json.loads((run_dir / "results.json").read_text())
    record["clean"]["other"] = {**CLEAN, "mAP": 0.7}
    (run_dir / "results.json").write_text(json.dumps(record))
    text = build_report(run_dir).read_text()
    assert Page(text).row_keys == ["clean", "clean"] + [row["key"] for row in RESULTS[:3] + transferred]
    assert "ifgsm linf gallery untargeted (default -&gt; other)" in text
    assert text.count("figures/ranking-ifgsm-linf-eps4-gallery-untargeted-0.png") == 1


def test_sticky_columns_start_where_the_sticky_columns_before_them_end():
    """Sticky cells are monospace: a column is its longest text in ch wide, plus .9em of padding and a 1px border."""
    headers, rows = ["attack", "norm", "eps", "mAP"], [["ifgsm", "linf", "12", "1.0"], ["clean", "-", "-", "80.0"]]
    assert sticky_offsets(headers, rows, [2, 0]) == {0: "calc(0ch + 0em + 0px)", 2: "calc(6ch + 0.9em + 1px)"}
    html = table(headers, rows, text_columns=1, sticky=[0, 2])
    assert '<th class="text sticky" style="left: calc(0ch + 0em + 0px)">attack</th><th>norm</th>' in html
    assert '<td class="sticky" style="left: calc(6ch + 0.9em + 1px)">12</td><td>1.0</td>' in html


def sticky_titles(page: str) -> list[str]:
    return re.findall(r'<th class="[^"]*sticky[^"]*"[^>]*>([^<]*)</th>', page.split("<h2>Clean vs attacked</h2>")[1].split("<h2>")[0])


def test_the_results_table_keeps_in_view_what_tells_its_rows_apart(tmp_path):
    assert sticky_titles(build_report(write_run(tmp_path / "plain", examples=False)).read_text()) == ["attack", "eps", "side", "goal"]
    transfer = {**RESULTS[1], "key": RESULTS[1]["key"] + "-from-other", "source": "other"}
    page = build_report(write_run(tmp_path / "transfer", [*RESULTS, transfer], examples=False)).read_text()
    assert sticky_titles(page) == ["attack", "eps", "side", "goal", "source"]
    longer = {**RESULTS[1], "key": RESULTS[1]["key"] + "-steps100", "steps": 100}
    assert identity_columns([*RESULTS, transfer, longer]) == ["attack", "eps", "side", "goal", "steps", "source"]
