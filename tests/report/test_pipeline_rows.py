"""Result tables and curves of a record evaluated under several pipelines."""

from __future__ import annotations

from metricattack.experiment.results import format_cell, table_rows, text_table, transfer_matrix
from metricattack.report.summary import curves


def row(pipeline: str, eps: float, mAP: float) -> dict:
    return {"key": f"ifgsm-linf-eps{eps:g}-gallery-untargeted", "attack": "ifgsm", "norm": "linf", "eps": eps,
            "side": "gallery", "goal": "untargeted", "source": "m", "target": "m", "pipeline": pipeline, "mAP": mAP,
            "rank1": mAP, "match_rank_mean": 12.345, "top10_overlap": 0.25, "ssim": 0.98765}  # fmt: skip


RECORD = {
    "pipelines": [{"name": "flip"}, {"name": "rerank"}],
    "clean": {"m": {"pipeline": "flip", "mAP": 0.8, "rank1": 0.9}},
    "clean_by_pipeline": {"flip": {"m": {"pipeline": "flip", "mAP": 0.8, "rank1": 0.9}},
                          "rerank": {"m": {"pipeline": "rerank", "mAP": 0.9, "rank1": 0.95}}},  # fmt: skip
    "results": [row("flip", 2, 0.4), row("rerank", 2, 0.6), row("flip", 4, 0.1), row("rerank", 4, 0.3)],
}


def test_a_clean_row_per_pipeline_first():
    rows = table_rows(RECORD)
    assert [(r["attack"], r["pipeline"], r["mAP"]) for r in rows[:2]] == [("clean", "flip", 0.8), ("clean", "rerank", 0.9)]
    assert len(rows) == 6


def test_a_curve_per_pipeline_from_its_own_clean_value():
    found = {curve.label: curve for curve in curves(RECORD)}
    assert set(found) == {"ifgsm linf gallery untargeted [flip]", "ifgsm linf gallery untargeted [rerank]"}
    rerank = found["ifgsm linf gallery untargeted [rerank]"]
    assert rerank.eps == [2, 4] and rerank.mAP == [0.6, 0.3] and rerank.clean_mAP == 0.9


def test_printed_table_and_cells():
    header = text_table(RECORD).splitlines()[0].split()
    assert header[5] == "pipeline" and header[-4:] == ["match@", "top10", "ssim", "seconds"]
    assert (format_cell("match_rank_mean", 12.345), format_cell("top10_overlap", 0.25), format_cell("ssim", 0.98765)) == (
        "12.3", "25.0", "0.988")  # fmt: skip
    plain = {**RECORD, "pipelines": [{"name": "plain"}]}
    assert "pipeline" not in text_table(plain).splitlines()[0]


def test_transfer_matrix_shows_the_deployed_pipeline():
    matrix = transfer_matrix(RECORD)  # one setting per matrix in practice; here the last flip row
    assert "10.0" in matrix and "30.0" not in matrix
