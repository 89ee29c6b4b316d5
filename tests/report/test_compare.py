"""`metricattack compare`: the tables from hand-made runs, the page's content, and bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from metricattack.cli import main
from metricattack.data.subset import subset_name
from metricattack.errors import InputError
from metricattack.experiment.plans import HEADLINE, PAPER_SETTING, PGD_HEADLINE
from metricattack.report.compare import (
    comparison_warning,
    csv_text,
    load_runs,
    map_matrix,
    markdown_text,
    summary_rows,
    summary_table,
    training_summary,
    write_compare,
)

from .test_html import Page

HEADLINE_KEY, PAPER_KEY = HEADLINE.key, PAPER_SETTING.key


def result(key: str, mAP: float, eps: float, source: str, target: str, attack: str = "pgd", **extra) -> dict:
    return {"key": key, "attack": attack, "norm": "linf", "eps": eps, "steps": 50, "side": "gallery", "goal": "untargeted",
            "restarts": 5, "target_pid": None, "source": source, "target": target, "mAP": mAP, "rank1": mAP,
            "mINP": mAP / 2, "embedding_shift": 0.5, **extra}  # fmt: skip


def write_record(run_dir: Path, model: str, clean: float, results: list[dict], **extra) -> Path:
    run_dir.mkdir(parents=True)
    record = {"command": f"metricattack run --weights {model}", "dataset": {"name": "synthetic"}, "seed": 0,
              "models": {"sources": [model], "targets": {model: {"arch": "compact"}}},
              "clean": {model: {"mAP": clean, "rank1": clean + 0.05, "mINP": clean / 2}}, "results": results, **extra}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(record))
    return run_dir


SANITY = {"model": "robust", "chance_mAP": 0.02, "passed": 5, "run": 6, "failed": ["transfer"], "checks": [
    {"name": "eps0", "passed": True, "summary": "eps 0 fine"},
    {"name": "transfer", "passed": False, "summary": "WARNING: transfer beats white-box (gradient masking)"},
    {"name": "collapse", "passed": None, "summary": "not run"}]}  # fmt: skip


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    plain = write_record(tmp_path / "plain", "default", 0.8, [
        result("auto-linf-eps4-gallery-untargeted", 0.05, 4, "default", "default", attack="auto"),
        result(HEADLINE_KEY, 0.01, 8, "default", "default", attack="auto"),
        result(PAPER_KEY, 0.02, 5, "default", "default", attack="ifgsm")],
        training={"default": training_summary({"train_seconds": 100, "train_config": {"epochs": 10}})})  # fmt: skip
    robust = write_record(tmp_path / "robust", "robust", 0.6, [
        result("auto-linf-eps4-gallery-untargeted", 0.45, 4, "robust", "robust", attack="auto"),
        result(HEADLINE_KEY, 0.3, 8, "robust", "robust", attack="auto"),
        result(HEADLINE_KEY + "-from-default", 0.5, 8, "default", "robust", attack="auto"),
        result(PAPER_KEY, 0.42, 5, "robust", "robust", attack="ifgsm")],
        training={"robust": training_summary({"train_seconds": 1600, "train_config": {"epochs": 20},
                                              "defense": {"name": "est", "eps": 8, "steps": 3}})},
        sanity=SANITY)  # fmt: skip
    return [plain, robust]


def test_training_summary_reads_defense_options_defensively():
    assert training_summary({})["cost"] == 1 and training_summary({})["defense"] == "none"
    est = training_summary({"defense": {"name": "est", "eps": 8, "steps": 3}, "train_seconds": 90.5, "epoch": 4})
    assert (est["defense"], est["inner_steps"], est["cost"], est["train_seconds"], est["epochs"]) == ("est", 3, 4, 90.5, 4)
    assert training_summary({"defense": {"name": "est", "eps": 0, "steps": 3}})["cost"] == 1  # eps 0: no inner attack
    assert training_summary({"defense": {"name": "offline", "steps": 6, "cost": 1.2}})["cost"] == 1.2  # its own figure wins
    odd = training_summary({"defense": "purifier", "train_seconds": "slow", "train_config": []})
    assert (odd["defense"], odd["cost"], odd["train_seconds"], odd["epochs"]) == ("purifier", None, None, None)


def test_summary_rows(runs):
    plain, robust = summary_rows(load_runs(runs))
    assert (plain["clean_mAP"], plain["robust_mAP"], plain["paper_mAP"], plain["transfer_mAP"]) == (0.8, 0.01, 0.02, None)
    assert plain["robust_ratio"] == pytest.approx(0.01 / 0.8) and plain["cost"] == 1 and plain["wall_time"] == 1.0
    assert robust["robust_ratio"] == pytest.approx(0.5) and robust["paper_ratio"] == pytest.approx(0.7)
    assert robust["transfer_mAP"] == 0.5 and robust["defense"] == "est" and robust["cost"] == 4
    assert robust["wall_time"] == pytest.approx((1600 / 20) / (100 / 10))
    assert plain["sanity"] is None and robust["sanity"] == "5/6 (failed: transfer)"


def test_map_matrix_lists_every_setting_with_its_source(runs):
    headers, rows = map_matrix(load_runs(runs))
    assert headers == ["setting", "source", "default", "robust"]
    assert rows[0] == ["clean", "-", "80.0", "60.0"]
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    assert by_key[(HEADLINE_KEY, "self")] == ["1.0", "30.0"]
    assert by_key[(HEADLINE_KEY + "-from-default", "default")] == ["-", "50.0"]


def test_csv_has_a_row_per_model_and_setting_with_mAP_relative_to_clean(runs):
    rows = list(csv.DictReader(io.StringIO(csv_text(load_runs(runs)))))
    assert [(r["model"], r["key"]) for r in rows][:4] == [("default", "clean"), ("default", rows[1]["key"]),
                                                          ("default", HEADLINE_KEY), ("default", PAPER_KEY)]  # fmt: skip
    assert len(rows) == 1 + 3 + 1 + 4
    transfer = next(r for r in rows if r["key"].endswith("-from-default"))
    assert transfer["source"] == "default" and float(transfer["relative_mAP"]) == pytest.approx(0.5 / 0.6)


def test_markdown_and_duplicate_names(runs, tmp_path):
    twin = write_record(tmp_path / "again", "robust", 0.5, [])
    models = load_runs([*runs, twin])
    assert [m.label for m in models] == ["default", "robust (robust)", "robust (again)"]
    text = markdown_text(models)
    # score: the mean over the cells (4, 8, 5 on the gallery) of worst / clean mAP = (0.45 + 0.3 + 0.42) / 0.6 / 3
    assert "| est | 60.0 | 65.0 | 0.650 | 30.0 | 0.50 | 42.0 | 0.70 | 50.0 | 4 | 8.00 | 5/6 (failed: transfer) |" in text
    assert "| robust (again) | " in text and "| none | 50.0 | 55.0 | - | - | - | - | - | - | 1 | - | - |" in text


def test_the_headline_is_the_recorded_one_else_a_plans_and_the_score_the_recorded_one(tmp_path):
    pgd_key = PGD_HEADLINE.key
    rows = [result(pgd_key, 0.2, 8, "m", "m"), result(HEADLINE_KEY, 0.1, 8, "m", "m", attack="auto")]
    old = write_record(tmp_path / "old", "m", 0.8, rows[:1])  # a run of the PGD plan, before runs named their headline
    named = write_record(tmp_path / "named", "m", 0.8, rows, headline=pgd_key, robustness={"m": {"score": 0.123}})
    unnamed = write_record(tmp_path / "unnamed", "m", 0.8, rows)
    old_row, named_row, unnamed_row = summary_rows(load_runs([old, named, unnamed]))
    assert (old_row["headline"], old_row["robust_mAP"], old_row["score"]) == ("pgd", 0.2, pytest.approx(0.25))
    assert (named_row["headline"], named_row["robust_mAP"], named_row["score"]) == ("pgd", 0.2, 0.123)
    assert (unnamed_row["headline"], unnamed_row["robust_mAP"], unnamed_row["score"]) == ("auto", 0.1, pytest.approx(0.125))


def test_compare_page_holds_everything_and_no_script(runs, tmp_path):
    page_path = write_compare(runs, tmp_path / "out")
    page = page_path.read_text()
    parsed = Page(page)
    assert "script" not in parsed.tags and parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert all(f"<h2>{title}</h2>" in page for title in ("Summary", "mAP against eps", "Sanity checks", "Training"))
    assert "gradient masking" in page and 'class="warning"' in page and "no sanity checks" in page
    assert (tmp_path / "out" / "compare.md").is_file() and (tmp_path / "out" / "compare.csv").is_file()
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_measured_alike_get_no_warning(runs):
    models = load_runs(runs)
    assert comparison_warning(models) is None and "measured under" not in summary_table(models)[0]
    assert "Warning" not in markdown_text(models)


def test_a_subset_run_beside_a_full_split_run_is_warned_about_and_marked(runs, tmp_path, capsys):
    subset = write_record(tmp_path / "quick", "quick", 1.0, [], dataset={"name": subset_name("synthetic", 2, 0)})
    models = load_runs([runs[0], subset])
    assert comparison_warning(models) == (
        "these runs differ in subset, so their numbers were not measured alike and do not compare directly "
        "(default: subset all query identities; quick: subset 2 query identities)")  # fmt: skip
    headers, rows = summary_table(models)
    assert headers[:3] == ["model", "measured under", "run"]
    assert [row[:2] for row in rows] == [["default", "subset all query identities"], ["quick", "subset 2 query identities"]]
    assert "**Warning:** these runs differ in subset" in markdown_text(models)
    page = write_compare([runs[0], subset], tmp_path / "out").read_text()
    assert '<p class="warning">Warning: these runs differ in subset' in page
    assert '<td class="text wrap">subset 2 query identities</td>' in page  # a text column, left-aligned, wrapping
    assert main(["compare", str(runs[0]), str(subset), "--out", str(tmp_path / "cli")]) == 0
    assert "warning: these runs differ in subset" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,named",
    [({"seed": 1}, "seed 1"), ({"pipelines": [{"name": "flip+rerank"}]}, "pipeline flip+rerank"),
     ({"dataset": {"name": "market1501", "num_gallery": 15913}}, "data set market1501 (15913 gallery images)")],
)  # fmt: skip
def test_a_seed_pipeline_or_data_set_mismatch_is_named(runs, tmp_path, extra, named):
    other = write_record(tmp_path / "other", "other", 0.7, [], **extra)
    warning = comparison_warning(load_runs([runs[0], other]))
    assert warning is not None and f"other: {named})" in warning and warning.count(" differ in ") == 1


def test_bad_run_dirs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="results.json"):
        load_runs([tmp_path / "missing"])
    with pytest.raises(InputError, match="at least one RUN_DIR"):
        load_runs([])
