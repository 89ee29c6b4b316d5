"""The command line end to end on tiny synthetic data, and its errors (one line, exit code 2)."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest

from metricattack.cli import main
from metricattack.models import save_checkpoint

SMALL = ["--train-ids", "8", "--test-ids", "6", "--cameras", "3", "--height", "32", "--width", "16"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "data"
    assert main(["synth", "--out", str(root), "--seed", "3", "--no-progress", *SMALL]) == 0
    return root


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_model)


def data_args(root):
    return ["--dataset", "market1501", "--data-root", str(root), "--no-progress"]


def test_synth_writes_a_market_tree_and_a_contact_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["synth", "--out", str(tmp_path / "d"), "--contact-sheet", str(sheet), "--no-progress", *SMALL]) == 0
    assert (tmp_path / "d" / "bounding_box_train").is_dir() and sheet.is_file()


def test_train_then_evaluate(data_root, tmp_path, capsys):
    out = tmp_path / "train"
    args = ["train", *data_args(data_root), "--epochs", "1", "--batch-size", "16", "--input-size", "32", "16", "--out", str(out)]
    assert main(args) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["train_command"].startswith("metricattack train") and 0 <= meta["clean_metrics"]["mAP"] <= 1
    capsys.readouterr()
    assert main(["evaluate", *data_args(data_root), "--weights", str(out / "model.safetensors"), "--json", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert f"mAP {100 * metrics['mAP']:.1f}" in printed and "rank-1" in printed and "mINP" in printed


def test_attack_writes_results_and_a_transfer_matrix(data_root, weights, tmp_path, capsys):
    out = tmp_path / "attack"
    args = ["attack", *data_args(data_root), "--source-model", str(weights), "--target-model", f"compact:{weights}",
            "--eps", "4", "--steps", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    record = json.loads((out / "results.json").read_text())
    assert [row["target"] for row in record["results"]] == ["tiny", "tiny#2"]
    white_box, transfer = record["results"]
    assert white_box["mAP"] == pytest.approx(transfer["mAP"])  # the same weights read two ways
    printed = capsys.readouterr().out
    assert "source \\ target" in printed and (out / "results.csv").is_file()


def test_attack_records_its_objective_schedule_and_gradient_passes(data_root, weights, tmp_path):
    out = tmp_path / "fast"
    args = ["attack", *data_args(data_root), "--weights", str(weights), "--eps", "4", "--schedule", "fast",
            "--attack-distance", "cosine", "--out", str(out), "--examples", "0"]  # fmt: skip
    assert main(args) == 0
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert (row["schedule"], row["attack_distance"], row["steps"]) == ("fast", "cosine", 5)
    assert row["num_attacked"] <= row["gradient_passes"] <= 5 * row["num_attacked"]


def test_attack_without_out_writes_nothing_and_says_how_to_keep_results(data_root, weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["attack", *data_args(data_root), "--weights", str(weights), "--attack", "fgsm", "--eps", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:4] == ["attack", "eps", "side", "goal"] and printed[2].split()[0] == "fgsm"
    assert printed[-1] == "no files written (pass --out DIR to keep results.json/.csv/.md)"
    assert list(tmp_path.iterdir()) == []  # nothing in the working folder (no runs/, no chunks)


def test_target_model_help_names_every_model_form():
    from metricattack.cli.parser import build_parser
    from metricattack.models import BUNDLED, EXTERNAL_SOURCES

    help_text = " ".join(build_parser()[1]["attack"].format_help().split())  # unwrapped
    listed = help_text.split("--target-model MODEL", 1)[1].split("repeatable", 1)[0]
    assert all(form in listed for form in [*BUNDLED, *(f"{prefix}:" for prefix in EXTERNAL_SOURCES), "zoo:NAME", "ARCH:PATH"])


def test_run_with_a_config_file_resumes_and_builds_the_report(data_root, weights, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "weights: " + str(weights) + "\n"
        "settings:\n"
        "  - {attack: ifgsm, eps: 2}\n"
        "  - {attack: ifgsm, eps: 4}\n"
        "  - {attack: fgsm, eps: 4, side: query, goal: targeted}\n"
    )
    out = tmp_path / "run"
    assert main(["run", *data_args(data_root), "--config", str(config), "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert [row["key"] for row in record["results"]] == [
        "ifgsm-linf-eps2-gallery-untargeted", "ifgsm-linf-eps4-gallery-untargeted", "fgsm-linf-eps4-query-targeted"]  # fmt: skip
    assert record["results"][2]["target_success_rank1"] is not None
    assert (out / "report.html").is_file() and (out / "results.md").is_file()
    assert "report: " in capsys.readouterr().out
    # Resuming a finished run recomputes nothing and keeps the numbers.
    before = (out / "results.json").read_text()
    assert main(["run", *data_args(data_root), "--config", str(config), "--out", str(out), "--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["mAP"] for r in again["results"]] == [r["mAP"] for r in json.loads(before)["results"]]
    assert [r["seconds"] for r in again["results"]] == [r["seconds"] for r in json.loads(before)["results"]]


def test_same_seed_same_numbers(data_root, weights, tmp_path):
    rows = []
    for name in ("a", "b"):
        args = ["attack", *data_args(data_root), "--weights", str(weights), "--attack", "pgd", "--eps", "4",
                "--steps", "2", "--seed", "7", "--out", str(tmp_path / name)]  # fmt: skip
        assert main(args) == 0
        rows.append(json.loads((tmp_path / name / "results.json").read_text())["results"][0])
    assert rows[0]["mAP"] == rows[1]["mAP"] and rows[0]["mINP"] == rows[1]["mINP"]


def test_report_command_rebuilds_the_page(data_root, weights, tmp_path):
    out = tmp_path / "r"
    config = tmp_path / "c.yaml"
    config.write_text("settings: [{attack: fgsm, eps: 3}]\n")
    assert main(["run", *data_args(data_root), "--weights", str(weights), "--config", str(config), "--out", str(out)]) == 0
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["attack", "--eps", "300"], r"--eps must be in \(0, 255\]"),
        (["attack", "--eps", "0"], r"--eps must be in \(0, 255\]"),
        (["attack", "--attack", "deepfool"], "unknown attack 'deepfool'"),
        (["attack", "--side", "train"], "unknown side 'train'"),
        (["attack", "--goal", "dodge"], "unknown goal 'dodge'"),
        (["attack", "--norm", "l1"], "unknown norm 'l1'"),
        (["attack", "--schedule", "slow"], "--schedule: unknown schedule 'slow'"),
        (["attack", "--attack", "pgd", "--schedule", "fast"], "--attack pgd does not take --schedule"),
        (["attack", "--attack-distance", "manhattan"], "--attack-distance: unknown distance 'manhattan'"),
        (["attack", "--goal", "targeted", "--target-pid", "4242"], "--target-pid 4242: no such identity"),
        (["evaluate", "--dataset", "market1501"], "needs --data-root"),
        (["evaluate", "--data-root", "/nonexistent"], "needs --dataset"),
        (["evaluate", "--dataset", "market1501", "--data-root", "/nonexistent"], "/nonexistent: data root not found"),
        (["evaluate", "DATA", "--weights", "/nonexistent.pth", "--model", "resnet18"], "/nonexistent.pth: checkpoint not found"),
        (["run", "--config", "/nonexistent.yaml"], "--config /nonexistent.yaml: not found"),
        (["report", "/nonexistent"], "results.json: not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, data_root, weights, tmp_path, capsys):
    if args[0] == "attack":
        args = [*args, *data_args(data_root), "--weights", str(weights), "--out", str(tmp_path / "out")]
    if "DATA" in args:
        args.remove("DATA")
        args += data_args(data_root)
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("metricattack: error: ") and "\n" not in error
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_output_dir_that_is_a_file(data_root, weights, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    args = ["run", *data_args(data_root), "--weights", str(weights), "--out", str(tmp_path / "taken")]
    with pytest.raises(SystemExit) as exit_info:  # checked by argparse: usage and one error line
        main(args)
    assert exit_info.value.code == 2
    assert "is a file" in capsys.readouterr().err.splitlines()[-1]
    assert (tmp_path / "taken").read_text() == "x"


def test_empty_query_set(data_root, weights, tmp_path, capsys):
    import shutil

    root = tmp_path / "noquery"
    shutil.copytree(data_root, root)
    for image in (root / "query").iterdir():
        image.unlink()
    assert main(["attack", *data_args(root), "--weights", str(weights)]) == 2
    assert "query: no images found" in capsys.readouterr().err


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epsilon: 5\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown options ['epsilon']" in capsys.readouterr().err


def test_default_model_on_default_data_matches_its_metadata_and_the_readme(capsys, tmp_path):
    """`metricattack evaluate` with no options: the bundled model on the generated default data."""
    from pathlib import Path

    from metricattack.models import DEFAULT_CHECKPOINT, read_metadata

    assert main(["evaluate", "--no-progress", "--json", str(tmp_path / "m.json")]) == 0
    measured = json.loads((tmp_path / "m.json").read_text())
    stored = read_metadata(DEFAULT_CHECKPOINT)["clean_metrics"]
    for key in ("mAP", "rank1", "mINP"):
        assert measured[key] == pytest.approx(stored[key], abs=0.003), key  # thread count may move the last digits
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{100 * stored['mAP']:.1f} % mAP" in readme and f"{100 * stored['rank1']:.1f} % rank-1" in readme
    assert f"mAP {100 * measured['mAP']:.1f}" in capsys.readouterr().out


def test_run_through_a_deployed_pipeline_with_rows_per_pipeline(data_root, weights, tmp_path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"weights: {weights}\nflip: true\nquery_expansion: 2\npipelines: [plain, rerank]\n"
                      "settings:\n  - {attack: fgsm, eps: 4}\n")  # fmt: skip
    out = tmp_path / "run"
    assert main(["run", *data_args(data_root), "--config", str(config), "--rerank", "--out", str(out), "--examples", "1"]) == 0
    record = json.loads((out / "results.json").read_text())
    assert [p["name"] for p in record["pipelines"]] == ["flip+qe2+rerank", "plain", "rerank"]
    assert record["pipelines"][0]["k1"] == 20 and list(record["clean_by_pipeline"]) == ["flip+qe2+rerank", "plain", "rerank"]
    assert record["clean"]["tiny"] == record["clean_by_pipeline"]["flip+qe2+rerank"]["tiny"]
    assert [row["pipeline"] for row in record["results"]] == ["flip+qe2+rerank", "plain", "rerank"]
    new_columns = ("clean_match_rank_mean", "match_rank_mean", "clean_match_rank_median", "match_rank_median",
                   "top10_overlap", "rank1_changed", "perturbation_linf", "perturbation_l2", "psnr", "ssim")  # fmt: skip
    assert all(row[column] is not None for row in record["results"] for column in new_columns)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "pipeline" in header and all(column in header for column in new_columns)
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 3 + 3  # 3 clean rows, 3 attacked rows
    assert "rank-1 changed" in (out / "report.html").read_text() and "at evaluation time only" in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "pipeline" in printed and "flip+qe2+rerank" in printed and "top10" in printed


def test_evaluate_under_a_pipeline(data_root, weights, tmp_path, capsys):
    args = ["evaluate", *data_args(data_root), "--weights", str(weights), "--json", str(tmp_path / "m.json")]
    assert main(args + ["--rerank", "--query-expansion", "2"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["pipeline"]["name"] == "qe2+rerank" and "pipeline qe2+rerank" in capsys.readouterr().out
    assert main(args) == 0
    assert json.loads((tmp_path / "m.json").read_text())["mAP"] != metrics["mAP"]


@pytest.mark.parametrize("options,message", [
    (["--pipelines", "plain", "rerank+sharpen"], "--pipelines: cannot read 'rerank+sharpen'"),
    (["--query-expansion", "-1"], "argument --query-expansion: expected an integer >= 0"),
])  # fmt: skip
def test_bad_pipeline_options(data_root, weights, options, message, capsys):
    with pytest.raises(SystemExit) if options[0] == "--query-expansion" else nullcontext():  # argparse: usage + one line
        assert main(["attack", *data_args(data_root), "--weights", str(weights), *options]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in last_line
