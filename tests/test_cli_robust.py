"""`run` with sanity checks, transfer jobs and --subset, and `compare`, end to end on tiny synthetic data."""

from __future__ import annotations

import json

import pytest
import torch

from metricattack.cli import main
from metricattack.data import load_dataset
from metricattack.evaluation import evaluate_ranking, pairwise_distance
from metricattack.data.images import read_images
from metricattack.models import build_model, load_model, save_checkpoint

from test_cli import data_args, data_root, weights  # noqa: F401  (fixtures)

SETTINGS = """
settings:
  - {attack: pgd, eps: 4, steps: 2, step_size: 1, restarts: 1}
  - {attack: pgd, eps: 8, steps: 2, step_size: 2, restarts: 1}
  - {attack: pgd, eps: 8, steps: 2, step_size: 2, restarts: 1, source: OTHER}
  - {attack: pgd, eps: 8, steps: 4, step_size: 2, restarts: 1, series: convergence}
"""


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    torch.manual_seed(1)
    return save_checkpoint(tmp_path_factory.mktemp("other") / "other", build_model("compact", input_size=(32, 16)))


@pytest.fixture(scope="module")
def robust_run(data_root, weights, other, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("robust")
    config = folder / "plan.yaml"
    config.write_text(f"weights: {weights}\nsanity_checks: true\n" + SETTINGS.replace("OTHER", str(other)))
    out = folder / "run"
    assert main(["run", *data_args(data_root), "--config", str(config), "--subset", "3", "--examples", "1", "--out", str(out)]) == 0
    return out


def test_run_stores_sanity_checks_training_and_transfer_rows(robust_run, other):
    record = json.loads((robust_run / "results.json").read_text())
    assert [c["name"] for c in record["sanity"]["checks"]] == ["eps0", "large_eps", "gradient", "transfer", "monotone",
                                                               "convergence", "collapse"]  # fmt: skip
    checks = {c["name"]: c for c in record["sanity"]["checks"]}
    assert checks["eps0"]["passed"] is True and checks["gradient"]["passed"] is True
    assert checks["transfer"]["compared"][0]["source"] == "other" and checks["convergence"]["passed"] is not None
    assert record["training"]["tiny"]["defense"] == "none" and record["training"]["tiny"]["cost"] == 1
    rows = record["results"]
    assert [r["source"] for r in rows] == ["tiny", "tiny", "other", "tiny"] and rows[2]["key"] == rows[1]["key"] + "-from-other"
    assert rows[2]["key"] not in record["examples"] and rows[1]["key"] in record["examples"]
    assert rows[3]["series"] == "convergence" and all(r["embedding_shift"] > 0 for r in rows)
    report = (robust_run / "report.html").read_text()
    assert "<h2>Sanity checks</h2>" in report and "eps 0 equals clean" in report


def test_subset_clean_metrics_are_those_of_its_queries_in_the_full_evaluation(robust_run, data_root, weights):  # noqa: F811
    record = json.loads((robust_run / "results.json").read_text())
    assert record["dataset"]["num_query_ids"] == 3 and "subset: 3 query identities, seed 0" in record["dataset"]["name"]
    data = load_dataset("market1501", data_root)
    model, _ = load_model(None, weights)
    with torch.no_grad():
        query, gallery = (model(read_images(samples, 64, None, 0).float() / 255) for samples in (data.query, data.gallery))
    identities = sorted({s.pid for s in data.query})
    generator = torch.Generator().manual_seed(0)  # the draw subset_query_identities documents: randperm with the seed
    kept = {identities[i] for i in torch.randperm(len(identities), generator=generator)[:3].tolist()}
    rows = torch.tensor([s.pid in kept for s in data.query])
    labels = [torch.tensor([getattr(s, f) for s in samples]) for f in ("pid", "camid") for samples in (data.query, data.gallery)]
    qp, gp, qc, gc = labels
    expected = evaluate_ranking(pairwise_distance(query[rows], gallery, "euclidean", True), qp[rows], gp, qc[rows], gc)
    assert record["clean"]["tiny"]["mAP"] == pytest.approx(expected.mAP, abs=1e-6)
    assert record["clean"]["tiny"]["num_queries"] + record["clean"]["tiny"]["num_skipped"] == int(rows.sum())


def test_the_same_subset_and_seed_give_the_same_numbers(robust_run, data_root, weights, tmp_path):  # noqa: F811
    config = tmp_path / "plan.yaml"
    config.write_text(f"weights: {weights}\nsettings:\n  - {{attack: pgd, eps: 8, steps: 2, step_size: 2, restarts: 1}}\n")
    out = tmp_path / "again"
    assert main(["run", *data_args(data_root), "--config", str(config), "--subset", "3", "--examples", "0", "--out", str(out)]) == 0
    first, second = (json.loads((d / "results.json").read_text()) for d in (robust_run, out))
    assert second["clean"] == first["clean"] and second["dataset"] == first["dataset"]
    assert second["results"][0]["mAP"] == first["results"][1]["mAP"]


def test_resuming_on_another_subset_is_refused(robust_run, data_root, weights, capsys):  # noqa: F811
    args = ["run", *data_args(data_root), "--weights", str(weights), "--subset", "2", "--out", str(robust_run), "--resume"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("metricattack: error: --resume:") and "was made with dataset" in error and error.count("\n") == 1


def test_compare_two_runs(robust_run, tmp_path, capsys):
    assert main(["compare", str(robust_run), str(robust_run), "--out", str(tmp_path / "cmp")]) == 0
    assert "comparison:" in capsys.readouterr().out
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "tiny (run)" in table and (tmp_path / "cmp" / "compare.html").is_file()
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_subset_out_of_range_is_an_error(data_root, weights, tmp_path, capsys):  # noqa: F811
    with pytest.raises(SystemExit):  # argparse's own check: usage + one line, exit 2
        main(["run", *data_args(data_root), "--weights", str(weights), "--subset", "0", "--out", str(tmp_path / "r")])
    assert "argument --subset: expected an integer >= 1" in capsys.readouterr().err
    assert main(["run", *data_args(data_root), "--weights", str(weights), "--subset", "100000", "--out", str(tmp_path / "r")]) == 2
    assert "--subset must be between 1 and the" in capsys.readouterr().err


def test_sanity_checks_probe_the_model_as_deployed(data_root, weights, tmp_path):  # noqa: F811
    """--amp and --flip reach the sanity checks: the input gradient they probe is the deployed model's, and eps 0
    through the deployed model still gives its clean metrics."""
    config = tmp_path / "plan.yaml"
    config.write_text(f"weights: {weights}\nsanity_checks: true\nsettings:\n  - {{attack: pgd, eps: 8, steps: 2, step_size: 2, restarts: 1}}\n")
    gradients = {}
    for name, extra in (("plain", []), ("bf16", ["--amp", "bf16"]), ("flip", ["--flip"])):
        out = tmp_path / name
        assert main(["run", *data_args(data_root), "--config", str(config), "--subset", "3", "--examples", "0", "--out", str(out), *extra]) == 0
        checks = {c["name"]: c for c in json.loads((out / "results.json").read_text())["sanity"]["checks"]}
        assert checks["eps0"]["passed"] is True
        gradients[name] = checks["gradient"]["mean_abs_gradient"]
    assert gradients["bf16"] != gradients["plain"] and gradients["flip"] != gradients["plain"]
