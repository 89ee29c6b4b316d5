"""Scale: images read from disk by index, settings stored chunk by chunk, resume inside a setting after a real
signal, clean stops after the current chunk, and torchrun sharing the work among processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import metricattack
from conftest import random_checkpoint, synth_root
from metricattack.attacks.attack import MetricAttack
from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.experiment.chunks import FolderChunks
from metricattack.experiment import step_attack
from metricattack.cli import main
from metricattack.data.images import read_images
from metricattack.system.signals import HELD_MESSAGE, Terminated, deferred_signals
from campaigns import attack, make_campaign, run

SMALL = ["--train-ids", "4", "--test-ids", "6", "--cameras", "2", "--height", "32", "--width", "16"]
# Keys whose values are the run's own (when, how long, which command), not its results.
OWN = {"created", "command", "seconds"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return synth_root(tmp_path_factory, "scale", 7, SMALL)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory)


def run_argv(data_root: Path, checkpoint: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", "market1501", "--data-root", str(data_root), "--no-progress", "--weights", str(checkpoint),
            "--config", str(config), "--out", str(out), "--examples", "0", "--chunk-size", "4", "--batch-size", "2", *extra]  # fmt: skip


def reference_run(data_root: Path, checkpoint: Path, tmp_path: Path, settings: str) -> tuple[Path, Path]:
    """A YAML file of ``settings`` and the folder of an ordinary single-process run of them."""
    config = tmp_path / "settings.yaml"
    config.write_text(f"settings: {settings}\n")
    assert main(run_argv(data_root, checkpoint, tmp_path / "reference", config)) == 0
    return config, tmp_path / "reference"


def comparable(record: dict) -> dict:
    """A results.json without the values that differ between two runs of the same experiment."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in OWN}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(record)


def assert_same_rows(rows: list[dict], others: list[dict]) -> None:
    """The same result rows, floats equal to 1e-6 relative (float32 SSIM summed over batches grouped otherwise
    rounds differently: 7e-9 relative was seen with two threads)."""
    assert len(rows) == len(others) > 0
    for row, other in zip(map(comparable, rows), map(comparable, others)):
        assert row.keys() == other.keys()
        for key, value in row.items():
            if isinstance(value, float):
                assert other[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
            else:
                assert other[key] == value, key


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(metricattack.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


# --- images from disk ----------------------------------------------------------------------------------
def test_a_side_reads_the_same_images_as_reading_the_whole_split(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=3, progress=False, chunk_size=5)
    everything = read_images(tiny_data.gallery, 7)
    chosen = torch.tensor([len(tiny_data.gallery) - 1, 0, 5, 5, 2])
    assert torch.equal(campaign.gallery.read(chosen), everything[chosen])
    assert torch.equal(campaign.gallery.read(), everything)
    expected = campaign.features(tiny_model, everything)  # one in-memory pass over the whole split
    assert torch.allclose(campaign.clean_features(named)[1], expected, atol=1e-5)


# --- chunks --------------------------------------------------------------------------------------------
def test_the_chunk_size_changes_neither_the_images_nor_the_metrics(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    outcomes = {}
    for chunk_size in (3, 1024):
        campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=2, progress=False, chunk_size=chunk_size)
        outcome, rows = run(campaign, AttackSetting("mifgsm", 4.0, "both", steps=3))
        outcomes[chunk_size] = (outcome, rows)
    (small, small_rows), (large, large_rows) = outcomes[3], outcomes[1024]
    assert len(small.gallery.ranges()) > 2 and len(large.gallery.ranges()) == 1
    assert torch.equal(small.gallery_images, large.gallery_images) and torch.equal(small.query_images, large.query_images)
    assert_same_rows(small_rows, large_rows)


def test_chunks_are_whole_batches_so_every_image_meets_the_same_batch(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    sizes = {chunk: make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=4, progress=False,
                             chunk_size=chunk).chunk_size for chunk in (1, 3, 4, 5, 8, 1024)}  # fmt: skip
    assert sizes == {1: 4, 3: 4, 4: 4, 5: 8, 8: 8, 1024: 1024}


def test_a_stored_setting_is_reused_chunk_by_chunk(tiny_data, tiny_model, tmp_path, monkeypatch):
    """Chunks found in the folder are not attacked again, and give the same results as attacking them."""
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=2, progress=False, chunk_size=4)
    setting = AttackSetting("pgd", 4.0, "gallery", steps=2, restarts=2)  # random starts: seeded per chunk
    fresh, fresh_rows = run(campaign, setting, folder=tmp_path / "first")
    chunks = sorted((tmp_path / "first").glob("*.safetensors"))
    assert len(chunks) == len(fresh.gallery.ranges()) > 2
    for path in chunks[len(chunks) // 2 :]:  # as if stopped half-way
        path.unlink()
    calls = []
    perturb = MetricAttack.perturb
    monkeypatch.setattr(MetricAttack, "perturb", lambda self, images, *a, **k: calls.append(len(images)) or perturb(self, images, *a, **k))
    resumed, resumed_rows = run(campaign, setting, folder=tmp_path / "first")
    assert sum(calls) == sum(stop - start for start, stop in fresh.gallery.ranges()[len(chunks) // 2 :])
    assert torch.equal(resumed.gallery_images, fresh.gallery_images)
    assert_same_rows(resumed_rows, fresh_rows)  # pass counts too: stored with each chunk


def test_a_stop_inside_a_chunk_resumes_from_its_last_saved_batch(tiny_data, tiny_model, tmp_path, monkeypatch):
    """An interrupted chunk keeps its finished batches with its generator's state: the resumed run attacks only the
    rest and makes the images (and pass counts) of an uninterrupted run."""
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=2, progress=False, chunk_size=8)
    setting = AttackSetting("pgd", 4.0, "gallery", steps=2, restarts=2)  # random starts: the generator must go on where it was
    fresh, fresh_rows = run(campaign, setting, folder=tmp_path / "fresh")
    monkeypatch.setattr(step_attack, "PARTIAL_SECONDS", 0.0)  # keep the finished batches after every batch
    calls, perturb = [], MetricAttack.perturb

    def stopping(self, images, *args, **kwargs):
        calls.append(len(images))
        if len(calls) == 7:  # the third batch of the second chunk (four batches of 2 per chunk)
            raise KeyboardInterrupt
        return perturb(self, images, *args, **kwargs)

    monkeypatch.setattr(MetricAttack, "perturb", stopping)
    with pytest.raises(KeyboardInterrupt):
        run(campaign, setting, folder=tmp_path / "stopped")
    assert len(list((tmp_path / "stopped").glob("*.partial.safetensors"))) == 1
    calls.clear()
    monkeypatch.setattr(MetricAttack, "perturb", lambda self, images, *a, **k: calls.append(len(images)) or perturb(self, images, *a, **k))
    resumed, resumed_rows = run(campaign, setting, folder=tmp_path / "stopped")
    assert sum(calls) == len(fresh.gallery) - 8 - 4  # the first chunk stored, two batches of the second kept
    assert torch.equal(resumed.gallery_images, fresh.gallery_images)
    assert_same_rows(resumed_rows, fresh_rows)
    assert not list((tmp_path / "stopped").glob("*.partial.safetensors"))


def test_a_signal_during_a_chunks_last_batch_keeps_the_whole_chunk(tiny_data, tiny_model, tmp_path, monkeypatch, sigint_as_in_a_terminal):
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=2, progress=False, chunk_size=8)
    calls, perturb = [], MetricAttack.perturb

    def interrupted(self, images, *args, **kwargs):
        calls.append(len(images))
        if len(calls) == 4:  # the first chunk's last batch: the signal is held until the batch is saved
            os.kill(os.getpid(), signal.SIGINT)
        return perturb(self, images, *args, **kwargs)

    monkeypatch.setattr(MetricAttack, "perturb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        attack(campaign, AttackSetting("ifgsm", 4.0, "gallery", steps=2), folder=tmp_path)
    assert len(calls) == 4 and FolderChunks(tmp_path).load("gallery-00000000-00000008") is not None
    assert not list(tmp_path.glob("*.partial.safetensors"))


def test_a_partial_chunk_of_another_batch_size_device_or_image_kind_is_not_resumed(tmp_path):
    store, images, state = FolderChunks(tmp_path), torch.zeros(4, 3, 8, 4, dtype=torch.uint8), torch.Generator().get_state()
    store.save_partial("c", images[:2], {"gradient_passes": 6}, state, 2, "cpu")
    kept, counters, stored_state = store.load_partial("c", 2, "cpu", images)
    assert torch.equal(kept, images[:2]) and counters == {"gradient_passes": 6} and torch.equal(stored_state, state)
    assert store.load_partial("c", 4, "cpu", images) is None  # other batches
    assert store.load_partial("c", 2, "cuda", images) is None  # a CUDA generator's state is another thing
    assert store.load_partial("c", 2, "cpu", images.float()) is None  # float images, not 8-bit
    assert store.load_partial("c", 2, "cpu", images[:2]) is None  # as long as the chunk: not a part of it
    store.discard_partial("c")
    assert store.load_partial("c", 2, "cpu", images) is None


def test_a_damaged_chunk_file_is_attacked_again(tiny_data, tiny_model, tmp_path):
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=4, progress=False, chunk_size=4)
    setting = AttackSetting("ifgsm", 4.0, "gallery", steps=2)
    fresh = attack(campaign, setting, folder=tmp_path)
    path = sorted(tmp_path.glob("*.safetensors"))[0]
    path.write_bytes(path.read_bytes()[:100])
    assert FolderChunks(tmp_path).load(path.stem) is None
    again = attack(campaign, setting, folder=tmp_path)
    assert torch.equal(again.gallery_images, fresh.gallery_images)


# --- signals -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum,error", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_inside_a_chunk_takes_effect_when_the_chunk_ends(signum, error, capsys, sigint_as_in_a_terminal):
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    finished = []
    with pytest.raises(error):
        with deferred_signals():
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
            finished.append(True)  # the work after the signal still runs
    assert finished == [True]
    assert capsys.readouterr().err == HELD_MESSAGE + "\n"  # the user learns why the run goes on, once
    with pytest.raises(error):  # a second signal stops at once
        with deferred_signals():
            os.kill(os.getpid(), signum)
            os.kill(os.getpid(), signum)
            finished.append(False)
    assert finished == [True]
    assert {number: signal.getsignal(number) for number in before} == before  # the handlers from before are back


def test_a_run_killed_inside_a_setting_resumes_to_the_uninterrupted_results(data_root, checkpoint, tmp_path):
    config, whole = reference_run(data_root, checkpoint, tmp_path, "[{attack: pgd, eps: 4, steps: 30, restarts: 2}, {attack: fgsm, eps: 2}]")
    out = tmp_path / "stopped"
    process = subprocess.Popen(
        [sys.executable, "-m", "metricattack", *run_argv(data_root, checkpoint, out, config)],
        env=env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    chunks = out / "chunks"
    deadline = time.monotonic() + 300
    while not list(chunks.rglob("*.safetensors")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    *held, last = stderr.splitlines()
    assert held in ([], [HELD_MESSAGE]) and "chunks are saved in" in last, stderr
    stored = list(chunks.rglob("*.safetensors"))
    assert stored and all(FolderChunks(path.parent).load(path.stem) is not None for path in stored)  # whole files only
    assert not (out / "results.json").is_file() or not json.loads((out / "results.json").read_text())["results"]
    assert main([*run_argv(data_root, checkpoint, out, config), "--resume"]) == 0
    resumed, uninterrupted = (json.loads((folder / "results.json").read_text()) for folder in (out, whole))
    assert comparable(resumed) == comparable(uninterrupted)
    assert not chunks.exists()  # a finished run leaves no chunks behind


# --- torchrun ------------------------------------------------------------------------------------------
def test_torchrun_with_two_processes_gives_the_single_process_results(data_root, checkpoint, tmp_path):
    """Two CPU processes (gloo) share the chunks and the clean features; the first writes the files."""
    settings = "[{attack: pgd, eps: 4, steps: 3, restarts: 2, side: both}, {attack: ifgsm, eps: 3, goal: targeted}]"
    config, single = reference_run(data_root, checkpoint, tmp_path, settings)
    shared = tmp_path / "shared"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "metricattack"]
    done = subprocess.run([*launch, *run_argv(data_root, checkpoint, shared, config)], env=env(), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("results in ") == 1  # only the first process prints and writes
    one, two = (json.loads((folder / "results.json").read_text()) for folder in (single, shared))
    rows_one, rows_two = one.pop("results"), two.pop("results")
    assert comparable(one) == comparable(two)
    assert_same_rows(rows_one, rows_two)


# --- --amp and --channels-last through the CLI ----------------------------------------------------------
def test_amp_and_channels_last_runs_give_the_float32_metrics_within_tolerance(data_root, checkpoint, tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text("settings: [{attack: ifgsm, eps: 4, steps: 3}]\n")
    records = {}
    for name, extra in (("plain", ()), ("bf16", ("--amp", "bf16", "--channels-last")), ("layout", ("--channels-last",))):
        assert main(run_argv(data_root, checkpoint, tmp_path / name, config, *extra)) == 0
        records[name] = json.loads((tmp_path / name / "results.json").read_text())
    plain, bf16, layout = (records[name]["results"][0] for name in ("plain", "bf16", "layout"))
    assert layout["mAP"] == pytest.approx(plain["mAP"], abs=1e-6)  # the same arithmetic in another memory layout
    assert bf16["mAP"] == pytest.approx(plain["mAP"], abs=0.03)  # bfloat16 rounding can move a few pixels' signs
    assert records["bf16"]["clean"]["rand"]["mAP"] == pytest.approx(records["plain"]["clean"]["rand"]["mAP"], abs=0.02)


def test_evaluation_a_few_queries_at_a_time_equals_the_whole_matrix(tiny_data, tiny_model, monkeypatch):
    """Metrics, ranking summaries and targeted success do not depend on how many distance rows are held at once."""
    from metricattack.evaluation import ranking

    named = NamedModel("tiny", tiny_model)
    setting = AttackSetting("ifgsm", 6.0, "gallery", "targeted", steps=3)
    results = []
    for chunk_bytes in (ranking._CHUNK_BYTES, 1):  # the default; then one query row at a time
        monkeypatch.setattr(ranking, "_CHUNK_BYTES", chunk_bytes)
        campaign = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=8, progress=False)
        outcome, rows = run(campaign, setting)
        metrics, distances = campaign.evaluate(named, *campaign.clean_features(named))
        summary = campaign.clean_evaluation(named)[1]
        results.append((rows, metrics, summary, outcome.rankings["tiny"], len(distances.ranges())))
    (rows, metrics, summary, attacked, chunks), (rows_1, metrics_1, summary_1, attacked_1, chunks_1) = results
    assert chunks == 1 and chunks_1 == len(tiny_data.query)
    assert rows[0]["target_success_rank1"] > 0 and rows[0]["target_rank_before"] > rows[0]["target_rank_after"]
    assert_same_rows(rows, rows_1)
    assert metrics.as_dict() == metrics_1.as_dict()
    for one, other in ((summary, summary_1), (attacked, attacked_1)):
        assert torch.equal(one.first_match_rank, other.first_match_rank) and torch.equal(one.top, other.top)


def test_torchrun_attack_without_an_out_folder_shares_its_chunks_in_memory(data_root, checkpoint):
    """Without --out the chunks are sent between the processes (no shared disk); the table equals one process's."""
    argv = ["attack", "--dataset", "market1501", "--data-root", str(data_root), "--no-progress", "--weights", str(checkpoint),
            "--attack", "pgd", "--eps", "4", "--steps", "3", "--restarts", "2", "--side", "both", "--chunk-size", "3", "--batch-size", "2"]  # fmt: skip
    single = subprocess.run([sys.executable, "-m", "metricattack", *argv], env=env(), capture_output=True, text=True, timeout=600)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "metricattack"]
    shared = subprocess.run([*launch, *argv], env=env(), capture_output=True, text=True, timeout=600)
    assert single.returncode == 0 and shared.returncode == 0, shared.stderr[-3000:]

    def table(stdout: str) -> list[list[str]]:  # the printed rows without the seconds column
        rows = [line.split() for line in stdout.splitlines() if line.strip() and not line.startswith(("no files written", "robustness score"))]
        seconds = rows[0].index("seconds")
        return [row[:seconds] + row[seconds + 1 :] for row in rows]

    assert len(table(single.stdout)) == 3 and table(shared.stdout) == table(single.stdout)
    scores = [[line for line in run.stdout.splitlines() if line.startswith("robustness score")] for run in (single, shared)]
    assert len(scores[0]) == 1 and scores[0] == scores[1]
