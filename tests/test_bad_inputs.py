"""Bad input, systematically: each case is one row (command, exit code, words of the error line) and
must give exactly one error line on stderr (argparse: its usage, then one line), exit code 2, no
traceback, no warning, and nothing new on disk. Property-based cases (Hypothesis) cover YAML values
and file names; interruption is tested with a real process and a real signal."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

import metricattack
from conftest import random_checkpoint, synth_root
from metricattack.cli import main
from metricattack.system.signals import HELD_MESSAGE
from metricattack.system.lock import LOCK_NAME, folder_lock
from metricattack.experiment.chunks import FolderChunks
from metricattack.models import build_model, save_checkpoint
from metricattack.cli.checks import positive_int
from metricattack.cli.config import settings_from_config
from metricattack.cli.run import setting_checks

SMALL = ["--train-ids", "6", "--test-ids", "5", "--cameras", "2", "--height", "32", "--width", "16"]


def run_cli(argv: list[str]) -> tuple[int, list[str], list[warnings.WarningMessage]]:
    """Run the CLI in this process: (exit code, stderr lines, warnings raised)."""
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, redirect_stderr(err), redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    return code, err.getvalue().splitlines(), list(caught)


def assert_one_error_line(lines: list[str], kind: str, words: tuple[str, ...] = ()) -> str:
    """The error is one line (after argparse's usage for kind 'usage'); it holds every word; returns it."""
    assert lines, "nothing on stderr"
    assert not any("Traceback" in line for line in lines), lines
    if kind == "usage":
        assert lines[0].startswith("usage: ") and all(line.startswith(" ") for line in lines[1:-1]), lines
        assert lines[-1].startswith("metricattack") and ": error: " in lines[-1], lines
    else:
        assert len(lines) == 1 and lines[0].startswith("metricattack: error: "), lines
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


def tree(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its size (what 'nothing new' is compared on)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


# --- fixtures: tiny data, a random model's checkpoint ------------------------------------------
@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return synth_root(tmp_path_factory, "bad", 5, SMALL)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory)


def data_args(root) -> list[str]:
    return ["--dataset", "market1501", "--data-root", str(root), "--no-progress"]


# --- set-ups: each returns placeholders for the command ------------------------------------------
def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def a_file(ctx) -> dict:
    return {"file": write(ctx["tmp"] / "a-file", "x")}


def a_folder(ctx) -> dict:
    (ctx["tmp"] / "a-folder").mkdir()
    return {"folder": ctx["tmp"] / "a-folder"}


def yaml_file(text: str | bytes):
    return lambda ctx: {"yaml": write(ctx["tmp"] / "c.yaml", text)}


def settings_yaml(entries: str):
    return yaml_file("settings:\n" + entries)


def checkpoint_copy(meta_edit=None, weights: bytes | None = None, json_bytes: bytes | None = None):
    """A copy of the random checkpoint with its JSON edited, replaced, or its weights replaced."""

    def setup(ctx) -> dict:
        folder = ctx["tmp"] / "ck"
        folder.mkdir()
        source = ctx["ckpt"]
        shutil.copy(source, folder / "m.safetensors")
        meta = json.loads(source.with_suffix(".json").read_text())
        if meta_edit is not None:
            meta_edit(meta)
        write(folder / "m.json", json_bytes if json_bytes is not None else json.dumps(meta))
        if weights is not None:
            write(folder / "m.safetensors", weights)
        return {"ck": folder / "m.safetensors"}

    return setup


def filled_weights(**values: float):
    """A checkpoint whose tensors (``neck__weight`` for neck.weight) are filled with values (NaN, or huge so features overflow)."""

    def setup(ctx) -> dict:
        model = build_model("compact", input_size=(32, 16))
        state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
        for key, value in values.items():
            state[key.replace("__", ".")].fill_(value)
        model.load_state_dict(state)
        return {"ck": save_checkpoint(ctx["tmp"] / "ck" / "m", model)}

    return setup


def torch_file(obj):
    return lambda ctx: {"pth": _torch_save(ctx["tmp"] / "w.pth", obj)}


def _torch_save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def truncated_safetensors(ctx) -> dict:
    full = ctx["tmp"] / "full.safetensors"
    save_file({"x": torch.zeros(100)}, str(full))
    part = write(ctx["tmp"] / "cut.safetensors", full.read_bytes()[:60])
    full.unlink()
    return {"st": part}


def data_copy(edit):
    """A copy of the tiny data set, edited by ``edit(root)``."""

    def setup(ctx) -> dict:
        root = ctx["tmp"] / "d"
        shutil.copytree(ctx["data"], root)
        edit(root)
        return {"d": root}

    return setup


def resize_last_gallery_image(root: Path) -> None:
    last = sorted((root / "bounding_box_test").iterdir())[-1]
    Image.open(last).resize((20, 40)).save(last)


def csv_list(content: bytes):
    return lambda ctx: {"csv": write(ctx["tmp"] / "list.csv", content)}


def train_state(state):
    """An --out folder of train with a train_state.pt holding ``state``."""

    def setup(ctx) -> dict:
        out = ctx["tmp"] / "out"
        out.mkdir()
        torch.save(state, out / "train_state.pt")
        return {}

    return setup


@dataclass
class Case:
    """One row: the command ({data}, {ckpt}, {out}, {tmp} and set-up placeholders), the error's kind and words."""

    name: str
    argv: list[str]
    words: tuple[str, ...]
    kind: str = "input"  # "input": one line; "usage": argparse's usage then one line
    setup: object = None
    extra: dict = field(default_factory=dict)


D = "{data_args}"  # expands to the tiny data set's options
TRAIN_SMALL = ["--epochs", "1", "--batch-size", "8", "--num-instances", "2", "--input-size", "32", "16"]
CK = ["--weights", "{ckpt}"]

CASES = [
    # --- numbers out of range or not numbers (argparse, from options.py) ---
    Case("batch-size 0", ["evaluate", D, *CK, "--batch-size", "0"], ("--batch-size", "integer >= 1", "'0'"), "usage"),
    Case("batch-size -1", ["evaluate", D, *CK, "--batch-size", "-1"], ("--batch-size", ">= 1"), "usage"),
    Case("batch-size word", ["evaluate", D, "--batch-size", "many"], ("--batch-size", "'many'"), "usage"),
    Case("workers -1", ["evaluate", D, "--workers", "-1"], ("--workers", "integer >= 0"), "usage"),
    Case("image-size 0 0", ["evaluate", D, "--image-size", "0", "0"], ("--image-size", ">= 1"), "usage"),
    Case("image-size one value", ["evaluate", D, "--image-size", "32"], ("--image-size", "expected 2"), "usage"),
    Case("examples -1", ["run", D, *CK, "--examples", "-1", "--out", "{out}"], ("--examples", ">= 0"), "usage"),
    Case("steps 0", ["attack", D, *CK, "--steps", "0"], ("--steps", ">= 1"), "line"),
    Case("steps -1", ["attack", D, *CK, "--steps", "-1"], ("--steps", ">= 0"), "usage"),
    Case("steps 1.5", ["attack", D, *CK, "--steps", "1.5"], ("--steps", "'1.5'"), "usage"),
    Case("restarts 0", ["attack", D, *CK, "--attack", "pgd", "--restarts", "0"], ("--restarts", ">= 1"), "usage"),
    Case("target-pid word", ["attack", D, *CK, "--goal", "targeted", "--target-pid", "x"], ("--target-pid",), "usage"),
    Case("seed word", ["evaluate", D, "--seed", "abc"], ("--seed",), "usage"),
    Case("seed too large", ["evaluate", D, "--seed", str(2**64 + 1)], ("--seed", "from 0 to 4294967295"), "usage"),
    Case("seed negative", ["evaluate", D, "--seed", "-1"], ("--seed",), "usage"),
    Case("train epochs 0", ["train", D, "--epochs", "0", "--out", "{out}"], ("--epochs", ">= 1"), "usage"),
    Case("train lr -1", ["train", D, "--lr", "-1", "--out", "{out}"], ("--lr", "> 0"), "usage"),
    Case("train lr nan", ["train", D, "--lr", "nan", "--out", "{out}"], ("--lr", "'nan'"), "usage"),
    Case("train erase-p 2", ["train", D, "--erase-p", "2", "--out", "{out}"], ("--erase-p", "between 0 and 1"), "usage"),
    Case("train warmup -1", ["train", D, "--warmup-epochs", "-1", "--out", "{out}"], ("--warmup-epochs",), "usage"),
    Case("train milestones 0", ["train", D, "--milestones", "0", "--out", "{out}"], ("--milestones",), "usage"),
    Case("train embedding-dim 0", ["train", D, "--embedding-dim", "0", "--out", "{out}"], ("--embedding-dim",), "usage"),
    Case("train input-size 0", ["train", D, "--input-size", "0", "16", "--out", "{out}"], ("--input-size",), "usage"),
    Case("train weight-decay -1", ["train", D, "--weight-decay", "-1", "--out", "{out}"], ("--weight-decay", ">= 0"), "usage"),
    Case("synth height 0", ["synth", "--out", "{out}", "--height", "0"], ("--height", ">= 1"), "usage"),
    Case("synth cameras word", ["synth", "--out", "{out}", "--cameras", "six"], ("--cameras",), "usage"),
    # --- argparse's own errors stay short ---
    Case("unknown option", ["evaluate", "--bogus"], ("unrecognized arguments: --bogus",), "usage"),
    Case("newline in an unknown value", ["evaluate", "a\nb"], ("a\\nb",), "usage"),
    Case("ap choice", ["evaluate", "--ap", "median"], ("--ap", "invalid choice"), "usage"),
    Case("weights-format choice", ["evaluate", "--weights-format", "x"], ("--weights-format",), "usage"),
    Case("settings on the command line", ["run", "--settings", "x"], ("--settings", "--config file"), "usage"),
    Case("no command", [], ("required",), "usage"),
    # --- paths that must be writable folders or files ---
    Case("out under a file", ["run", D, *CK, "--out", "{file}/run"], ("--out", "is a file"), "usage", a_file),
    Case("out is a file", ["attack", D, *CK, "--out", "{file}"], ("--out", "is a file"), "usage", a_file),
    Case("out cannot be created", ["run", D, *CK, "--out", "/proc/metricattack-run"], ("--out", "cannot write in /proc"), "usage"),
    Case("train out under a file", ["train", D, "--out", "{file}/t"], ("--out", "is a file"), "usage", a_file),
    Case("synth out under a file", ["synth", "--out", "{file}/s"], ("--out", "is a file"), "usage", a_file),
    Case("save-images is a file", ["attack", D, *CK, "--save-images", "{file}"], ("--save-images", "is a file"), "usage", a_file),
    Case("json is a folder", ["evaluate", D, "--json", "{folder}"], ("--json", "is a folder"), "usage", a_folder),
    Case("json under a file", ["evaluate", D, "--json", "{file}/m.json"], ("--json", "is a file"), "usage", a_file),
    Case("contact sheet is a folder", ["synth", "--out", "{out}", "--contact-sheet", "{folder}"], ("--contact-sheet",), "usage", a_folder),
    # --- --config files and YAML values (checked by the same checks as the options) ---
    Case("config is a folder", ["evaluate", "--config", "{folder}"], ("--config", "is a folder"), "input", a_folder),
    Case("config not UTF-8", ["evaluate", "--config", "{yaml}"], ("--config", "not UTF-8"), "input", yaml_file(b"seed: \xff\xfe\n")),
    Case("config a list", ["evaluate", "--config", "{yaml}"], ("expected a mapping",), "input", yaml_file("- 1\n")),
    Case("config unknown key", ["evaluate", "--config", "{yaml}"], ("unknown options ['epsilon']",), "input", yaml_file("epsilon: 5\n")),
    Case("yaml batch_size list", ["evaluate", "--config", "{yaml}"], ("batch_size", "single value"), "input", yaml_file("batch_size: [1, 2]\n")),
    Case("yaml batch_size 0", ["evaluate", "--config", "{yaml}"], ("batch_size", ">= 1"), "input", yaml_file("batch_size: 0\n")),
    Case("yaml workers null", ["evaluate", "--config", "{yaml}"], ("workers", "expected a value"), "input", yaml_file("workers:\n")),
    Case("yaml seed float", ["evaluate", "--config", "{yaml}"], ("seed", "1.5"), "input", yaml_file("seed: 1.5\n")),
    Case("yaml flag not bool", ["evaluate", "--config", "{yaml}"], ("no_progress", "true or false"), "input", yaml_file("no_progress: 'yes'\n")),
    Case("yaml image_size short", ["evaluate", "--config", "{yaml}"], ("image_size", "2 values"), "input", yaml_file("image_size: [32]\n")),
    Case("yaml image_size scalar", ["evaluate", "--config", "{yaml}"], ("image_size", "expected a list"), "input", yaml_file("image_size: 32\n")),
    Case("yaml ap choice", ["evaluate", "--config", "{yaml}"], ("ap", "expected one of standard"), "input", yaml_file("ap: median\n")),
    Case("yaml json a folder", ["evaluate", "--config", "{yaml}"], ("json", "is a folder"), "input", yaml_file("json: /\n")),
    Case("yaml settings a string", ["run", "--config", "{yaml}"], ("settings", "list or mapping"), "input", yaml_file("settings: fgsm\n")),
    Case("yaml settings empty", ["run", "--config", "{yaml}"], ("settings", "non-empty list"), "input", yaml_file("settings: []\n")),
    Case("yaml setting eps string", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"], ("settings[1]: eps", "expected a finite number", "'abc'"), "input",
         settings_yaml("  - {attack: ifgsm, eps: abc}\n")),  # fmt: skip
    Case("yaml setting steps string", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"], ("settings[2]: steps",), "input",
         settings_yaml("  - {attack: ifgsm, eps: 2}\n  - {attack: ifgsm, eps: 2, steps: many}\n")),  # fmt: skip
    Case("yaml setting steps 0", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"], ("settings[1]: --steps", ">= 1"), "input",
         settings_yaml("  - {attack: ifgsm, steps: 0}\n")),  # fmt: skip
    Case("yaml setting eps list", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"], ("settings[1]: eps", "single value"), "input",
         settings_yaml("  - {attack: ifgsm, eps: [1, 2]}\n")),  # fmt: skip
    Case("yaml setting unknown key", ["run", "--config", "{yaml}"], ("settings[1]",), "input", settings_yaml("  - {attack: ifgsm, epsilon: 3}\n")),
    # --- values checked against their meaning ---
    Case("eps nan", ["attack", D, *CK, "--eps", "nan"], ("--eps", "finite number", "'nan'"), "usage"),
    Case("eps 300", ["attack", D, *CK, "--eps", "300"], ("--eps must be in (0, 255]",)),
    Case("step-size negative", ["attack", D, *CK, "--step-size", "-1"], ("--step-size must be in (0, 255]",)),
    Case("device", ["evaluate", D, "--device", "tpu"], ("--device", "unknown device 'tpu'")),
    Case("plan", ["run", D, "--plan", "nope"], ("--plan", "unknown plan 'nope'")),
    Case("dataset name", ["evaluate", "--dataset", "imagenet", "--data-root", "{tmp}"], ("unknown data set 'imagenet'",)),
    # --- data ---
    Case("csv not UTF-8", ["evaluate", "--dataset", "folder", "--data-root", "{csv}"], ("list.csv", "not UTF-8"), "input",
         csv_list(b"path,pid,camid,split\n\xe9.jpg,1,0,query\n")),  # fmt: skip
    Case("csv with a NUL byte", ["evaluate", "--dataset", "folder", "--data-root", "{csv}"], ("list.csv:2",), "input",
         csv_list(b"path,pid,camid,split\na\x00.jpg,1,0,query\n")),  # fmt: skip
    Case("csv bad header", ["evaluate", "--dataset", "folder", "--data-root", "{csv}"], ("expected the header",), "input",
         csv_list(b"file,id\n")),  # fmt: skip
    Case("image not an image", ["evaluate", "--dataset", "market1501", "--data-root", "{d}", "--no-progress"], ("cannot read image",),
         "input", data_copy(lambda r: sorted((r / "query").iterdir())[0].write_bytes(b"not a jpeg"))),  # fmt: skip
    Case("image not an image, read by a worker process", ["evaluate", "--dataset", "market1501", "--data-root", "{d}", "--no-progress",
         "--workers", "1"], ("cannot read image",), "input",
         data_copy(lambda r: sorted((r / "query").iterdir())[0].write_bytes(b"not a jpeg"))),  # fmt: skip
    Case("mixed sizes across batches (attack)", ["attack", "--dataset", "market1501", "--data-root", "{d}", "--no-progress", *CK,
         "--batch-size", "1"], ("different sizes", "--image-size"), "input", data_copy(resize_last_gallery_image)),  # fmt: skip
    Case("mixed sizes across batches (evaluate)", ["evaluate", "--dataset", "market1501", "--data-root", "{d}", "--no-progress", *CK,
         "--batch-size", "1"], ("different sizes", "--image-size"), "input", data_copy(resize_last_gallery_image)),  # fmt: skip
    Case("mixed sizes in one batch", ["evaluate", "--dataset", "market1501", "--data-root", "{d}", "--no-progress", *CK,
         "--batch-size", "512"], ("different sizes",), "input", data_copy(resize_last_gallery_image)),  # fmt: skip
    # --- checkpoints ---
    Case("checkpoint JSON not UTF-8", ["evaluate", D, "--weights", "{ck}"], ("m.json", "not UTF-8"), "input",
         checkpoint_copy(json_bytes=b'{"spec": "\xff"}')),  # fmt: skip
    Case("checkpoint empty spec", ["evaluate", D, "--weights", "{ck}"], ("m.json", "'spec'"), "input",
         checkpoint_copy(lambda m: m.update(spec={}))),  # fmt: skip
    Case("checkpoint spec a string", ["evaluate", D, "--weights", "{ck}"], ("m.json", "'spec'"), "input",
         checkpoint_copy(lambda m: m.update(spec="compact"))),  # fmt: skip
    Case("checkpoint spec field type", ["evaluate", D, "--weights", "{ck}"], ("m.json", "input_size", "expected"), "input",
         checkpoint_copy(lambda m: m["spec"].update(input_size="big"))),  # fmt: skip
    Case("checkpoint spec without arch", ["evaluate", D, "--weights", "{ck}"], ("m.json", "no 'arch'"), "input",
         checkpoint_copy(lambda m: m["spec"].pop("arch"))),  # fmt: skip
    Case("checkpoint spec bool as int", ["evaluate", D, "--weights", "{ck}"], ("num_classes",), "input",
         checkpoint_copy(lambda m: m["spec"].update(num_classes=True))),  # fmt: skip
    Case("checkpoint weights truncated", ["evaluate", D, "--weights", "{ck}"], ("m.safetensors", "not a readable safetensors"), "input",
         checkpoint_copy(weights=b"\x10\x00\x00\x00\x00\x00\x00\x00{")),  # fmt: skip
    Case("safetensors truncated, no JSON", ["evaluate", D, "--model", "compact", "--weights", "{st}"], ("cut.safetensors", "not a readable"),
         "input", truncated_safetensors),  # fmt: skip
    Case("safetensors missing", ["evaluate", D, "--weights", "{tmp}/missing.safetensors"], ("missing.safetensors", "not found")),
    Case("target model missing", ["attack", D, *CK, "--target-model", "{tmp}/gone.safetensors"], ("gone.safetensors", "not found")),
    Case("pickled object refused", ["evaluate", D, "--model", "compact", "--weights", "{pth}"],
         ("w.pth", "refused", "more than weights", "argparse.Namespace"), "input", torch_file(argparse.Namespace(a=1))),  # fmt: skip
    Case("raw pickle refused without a warning", ["evaluate", D, "--model", "compact", "--weights", "{tmp}/raw.pkl"],
         ("raw.pkl", "refused", "more than weights"), "input",
         lambda ctx: {"raw": write(ctx["tmp"] / "raw.pkl", pickle.dumps({"a": 1}, protocol=4))}),  # fmt: skip
    Case("torch file truncated", ["evaluate", D, "--model", "compact", "--weights", "{tmp}/x.pth"], ("x.pth", "not a readable torch"),
         "input", lambda ctx: {"x": write(ctx["tmp"] / "x.pth", b"PK\x03\x04 truncated")}),  # fmt: skip
    Case("NaN weights", ["evaluate", D, "--weights", "{ck}"], ("m.safetensors", "NaN", "neck.weight"), "input",
         filled_weights(neck__weight=float("nan"))),  # fmt: skip
    Case("NaN weights in an attack", ["attack", D, "--weights", "{ck}", "--out", "{out}"], ("m.safetensors", "NaN"), "input",
         filled_weights(neck__running_var=float("nan"))),  # fmt: skip
    Case("overflowing features (evaluate)", ["evaluate", D, "--weights", "{ck}"], ("model ", "not finite"), "input",
         filled_weights(neck__running_mean=-3e38, neck__weight=3e38)),  # fmt: skip
    Case("overflowing features (attack)", ["attack", D, "--weights", "{ck}", "--out", "{out}"], ("model m", "not finite"), "input",
         filled_weights(neck__running_mean=-3e38, neck__weight=3e38)),  # fmt: skip
    Case("train resume over a pickled object", ["train", D, *TRAIN_SMALL, "--out", "{out}", "--resume"], ("train_state.pt", "refused"),
         "input", train_state({"epoch": 0, "optimizer": argparse.Namespace()})),  # fmt: skip
    Case("train resume over a foreign state", ["train", D, *TRAIN_SMALL, "--out", "{out}", "--resume"], ("train_state.pt", "expected"),
         "input", train_state([1, 2])),  # fmt: skip
    # --- settings checked against the data before any attack ---
    Case("target pid absent (attack)", ["attack", D, *CK, "--goal", "targeted", "--target-pid", "4242", "--out", "{out}"], ("4242",)),
    Case("later setting's target pid absent (run)", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"],
         ("ifgsm-linf-eps2-query-targeted-pid4242", "no such identity", "nothing was attacked"), "input",
         settings_yaml("  - {attack: fgsm, eps: 2}\n  - {attack: ifgsm, eps: 2, side: query, goal: targeted, target_pid: 4242}\n")),  # fmt: skip
    # --- sizes whose one batch cannot fit in memory: refused before any work (not by the system killing the process) ---
    Case("input-size too large for memory", ["evaluate", D, *CK, "--input-size", "1000000", "1000000"],
         ("--input-size 1000000 1000000", "one batch of 64", "memory", "--batch-size")),  # fmt: skip
    Case("image-size too large for memory", ["attack", D, *CK, "--image-size", "1000000", "1000000", "--out", "{out}"],
         ("--image-size 1000000 1000000", "memory")),  # fmt: skip
    Case("train input-size too large for memory", ["train", D, "--input-size", "1000000", "1000000", "--batch-size", "8", "--out", "{out}"],
         ("--input-size 1000000 1000000", "one batch of 8")),  # fmt: skip
    Case("yaml image_size too large for memory", ["run", D, *CK, "--config", "{yaml}", "--out", "{out}"], ("--image-size", "memory"),
         "input", yaml_file("image_size: [1000000, 1000000]\n")),  # fmt: skip
    Case("report of a folder without results", ["report", "{folder}"], ("results.json", "not found"), "input", a_folder),
    Case("report of corrupt results", ["report", "{folder}"], ("results.json", "not valid"), "input",
         lambda ctx: {"folder": write(ctx["tmp"] / "r" / "results.json", "{").parent}),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, data_root, checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/... would appear here
    ctx = {"tmp": tmp_path, "data": data_root, "ckpt": checkpoint}
    values = {"tmp": tmp_path, "data": data_root, "ckpt": checkpoint, "out": tmp_path / "out"}
    values.update(case.setup(ctx) if case.setup else {})
    argv = []
    for arg in case.argv:
        argv += data_args(data_root) if arg == D else [arg.format(**values)]
    before = tree(tmp_path)
    code, lines, caught = run_cli(argv)
    assert code == 2, (code, lines)
    assert_one_error_line(lines, case.kind, case.words)
    assert not caught, [str(w.message) for w in caught]
    assert tree(tmp_path) == before  # nothing new, nothing half-written


# --- property-based: YAML values and file names ---------------------------------------------------
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)  # fmt: skip
yaml_values = st.one_of(yaml_scalars, st.lists(yaml_scalars, max_size=3), st.dictionaries(st.text(max_size=4), yaml_scalars, max_size=2))


def accepted(check, value) -> bool:
    try:
        check(str(value))
        return not isinstance(value, (list, dict, type(None)))
    except (argparse.ArgumentTypeError, ValueError):
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=yaml_values)
def test_any_bad_yaml_batch_size_is_one_line_naming_it(value, tmp_path):
    assume(not accepted(positive_int, value))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"batch_size": value}))
    code, lines, _ = run_cli(["evaluate", "--config", str(config)])
    assert code == 2
    assert_one_error_line(lines, "input", ("batch_size",))


def eps_accepted(value) -> bool:
    try:
        return isinstance(value, (int, float, str)) and not isinstance(value, bool) and 0 < float(value) <= 255
    except ValueError:
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=yaml_values)
def test_any_bad_yaml_eps_in_a_setting_is_refused_before_any_work(value, tmp_path):
    assume(not eps_accepted(value))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"settings": [{"attack": "fgsm", "eps": value}]}))
    code, lines, _ = run_cli(["run", "--config", str(config), "--out", str(tmp_path / "out")])
    assert code == 2
    line = assert_one_error_line(lines, "input")
    assert "eps" in line
    assert not (tmp_path / "out").exists()


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=20).filter(lambda n: "/" not in n and n not in (".", "..")))
def test_any_missing_config_file_name_is_one_line(name, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "names"
    folder.mkdir(exist_ok=True)
    code, lines, _ = run_cli(["evaluate", "--config", str(folder / name)])
    assert code == 2
    assert_one_error_line(lines, "input", ("--config",))


RECORD_KEYS = ["clean", "results", "dataset", "examples", "name", "key", "target", "mAP", "rank1", "eps", "attack", "side",
               "goal", "norm", "source", "pairs", "rankings"]  # fmt: skip
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(0, 1), st.sampled_from(RECORD_KEYS)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.sampled_from(RECORD_KEYS), children, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(record=st.fixed_dictionaries({"clean": json_values, "results": json_values}, optional={"dataset": json_values}))
def test_report_of_any_mangled_record_is_one_line_or_a_report(record, tmp_path_factory):
    folder = tmp_path_factory.mktemp("record")
    (folder / "results.json").write_text(json.dumps(record))
    code, lines, _ = run_cli(["report", str(folder)])
    assert code in (0, 2), lines
    if code == 2:
        assert_one_error_line(lines, "input", ("results.json",))


def test_a_quoted_number_in_a_yaml_setting_is_the_number():
    """A documented leniency (docs/commands.md): a YAML value is read as the command line reads its text."""
    [setting] = settings_from_config(yaml.safe_load('[{attack: ifgsm, eps: "4", steps: "10"}]'), setting_checks())
    assert (setting.eps, setting.steps) == (4.0, 10)


# --- resume identity, folder lock ---------------------------------------------------------------------
def run_once(data_root, checkpoint, out, *extra) -> list[str]:
    config = out.parent / "one.yaml"
    config.write_text("settings: [{attack: fgsm, eps: 2}]\n")
    return ["run", *data_args(data_root), "--weights", str(checkpoint), "--config", str(config), "--out", str(out),
            "--examples", "0", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(data_root, checkpoint, tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("finished") / "run"
    argv = run_once(data_root, checkpoint, out)
    assert run_cli(argv)[0] == 0
    return out, argv


@pytest.mark.parametrize(
    "change,words",
    [
        (["--seed", "1"], ("seed 0", "this run has 1")),
        (["--no-quantize"], ("quantize",)),
        (["--ap", "trapezoid"], ("average_precision",)),
        (["DATA_COPY"], ("dataset.root",)),
        (["--target-model", "default"], ("models.",)),
        (["--image-size", "64", "32"], ("attacked_images.gallery_size [32, 16], this run has [64, 32]", "--image-size")),
        (["--flip"], ("attacked_images.flip false, this run has true",)),
    ],
)
def test_resume_refuses_another_experiment(change, words, finished_run, data_root, tmp_path):
    out, argv = finished_run
    argv = [*argv, "--resume", *change]
    if "DATA_COPY" in argv:
        argv.remove("DATA_COPY")
        shutil.copytree(data_root, tmp_path / "copy")
        argv[argv.index(str(data_root))] = str(tmp_path / "copy")
    before = tree(out)
    code, lines, _ = run_cli(argv)
    assert code == 2
    assert_one_error_line(lines, "input", ("--resume", "results.json", *words))
    assert tree(out) == before


def test_resume_refuses_another_plan(finished_run, tmp_path):
    out, argv = finished_run
    other = tmp_path / "other.yaml"
    other.write_text("settings: [{attack: fgsm, eps: 3}]\n")
    argv = [*argv, "--resume"]
    argv[argv.index("--config") + 1] = str(other)
    code, lines, _ = run_cli(argv)
    assert code == 2 and "plan" in assert_one_error_line(lines, "input")


def test_resume_with_the_same_identity_is_accepted(finished_run):
    out, argv = finished_run
    before = json.loads((out / "results.json").read_text())["results"]
    assert run_cli([*argv, "--resume"])[0] == 0
    assert json.loads((out / "results.json").read_text())["results"] == before


def test_a_second_run_into_a_locked_folder_refuses(data_root, checkpoint, tmp_path):
    out = tmp_path / "run"
    with folder_lock(out):  # as another process would hold it (flock is per open file, so this process conflicts too)
        code, lines, _ = run_cli(run_once(data_root, checkpoint, out))
        assert code == 2
        assert_one_error_line(lines, "input", ("--out", "another metricattack process", f"pid {os.getpid()}"))
        code, lines, _ = run_cli(run_once(data_root, checkpoint, out, "--resume"))
        assert code == 2
    assert not out.exists()  # the lock made the folder; releasing it left nothing behind


def test_a_stale_lock_of_a_dead_process_is_taken_over(data_root, checkpoint, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{dead.pid}\n")
    assert run_cli(run_once(data_root, checkpoint, out))[0] == 0
    assert (out / "results.json").is_file() and not (out / LOCK_NAME).exists()


def test_resume_checks_the_chunks_of_a_run_stopped_before_its_first_result(data_root, checkpoint, tmp_path, monkeypatch):
    """No results.json yet, only chunks: they were made with the first run's image size, and must not be mixed with others."""
    out = tmp_path / "run"
    argv = run_once(data_root, checkpoint, out, "--chunk-size", "2")
    store = FolderChunks.save

    def store_then_stop(self, name, images, counters):  # as if Ctrl-C came once the first chunk is stored
        store(self, name, images, counters)
        raise KeyboardInterrupt

    monkeypatch.setattr(FolderChunks, "save", store_then_stop)
    assert run_cli(argv)[0] == 130
    monkeypatch.undo()
    assert not (out / "results.json").exists() and len(list(out.rglob("*.safetensors"))) == 1
    before = tree(out)
    code, lines, _ = run_cli([*argv, "--resume", "--image-size", "64", "32"])
    assert code == 2
    assert_one_error_line(lines, "input", ("--resume", "chunks/identity.json", "attacked_images.gallery_size [32, 16]", "--image-size"))
    assert tree(out) == before
    assert run_cli([*argv, "--resume"])[0] == 0  # the same options continue from the stored chunk
    assert (out / "results.json").is_file() and not (out / "chunks").exists()


@pytest.mark.parametrize("command", ["train", "attack"])
def test_a_training_or_attack_into_a_locked_folder_refuses(command, data_root, checkpoint, tmp_path):
    out = tmp_path / "out"
    argv = {"train": ["train", *data_args(data_root), *TRAIN_SMALL, "--out", str(out)],
            "attack": ["attack", *data_args(data_root), "--weights", str(checkpoint), "--steps", "1", "--out", str(out)]}[command]  # fmt: skip
    with folder_lock(out):  # as another process would hold it
        before = tree(out)
        code, lines, _ = run_cli(argv)
        assert code == 2
        assert_one_error_line(lines, "input", ("--out", "another metricattack process", f"pid {os.getpid()}"))
        assert tree(out) == before
    assert not out.exists()


def test_two_trainings_into_one_folder_at_once_the_second_is_refused(data_root, tmp_path):
    out = tmp_path / "t"
    argv = ["train", *data_args(data_root), *TRAIN_SMALL, "--epochs", "30000", "--out", str(out)]
    first = spawn(argv)
    try:
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline and not (out / LOCK_NAME).is_file():
            time.sleep(0.05)
        while first.poll() is None and time.monotonic() < deadline and not (out / LOCK_NAME).read_text().strip():
            time.sleep(0.05)  # the holder writes its pid just after taking the lock
        assert first.poll() is None, first.communicate()[1]
        code, lines, _ = run_cli(argv)
        assert code == 2
        assert_one_error_line(lines, "input", (f"--out {out}: another metricattack process (pid {first.pid})",))
    finally:
        first.send_signal(signal.SIGTERM)
        stderr = first.communicate(timeout=120)[1]
    assert first.returncode == 143, stderr
    assert not (out / LOCK_NAME).exists()  # released by the first training


# --- memory: a batch the allocator refuses (a real limit on a real process) -----------------------------------------------
LIMITED = """
import resource, sys
import metricattack.cli.config, metricattack.cli.parser  # imported before the limit, as the command imports them
from metricattack.cli import main
size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc to size the limit")
@pytest.mark.parametrize("option", ["--input-size", "--image-size"])
def test_a_batch_the_allocator_refuses_is_one_line_naming_the_sizes(option, data_root, checkpoint, tmp_path):
    """One batch of 64 images at 2000x1000 takes 1.5 GB, more than the 1 GiB the process may still map."""
    argv = ["evaluate", *data_args(data_root), "--weights", str(checkpoint), option, "2000", "1000", "--batch-size", "64"]
    result = subprocess.run([sys.executable, "-c", LIMITED, *argv], env=CHILD_ENV, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr.splitlines(), "input", ("out of memory", f"{option} (now 2000 1000)", "--batch-size (now 64)"))
    assert not any(tmp_path.iterdir())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["evaluate", "attack", "run", "train"]),
    option=st.sampled_from(["--input-size", "--image-size"]),
    size=st.tuples(st.integers(2 * 10**6, 10**9), st.integers(2 * 10**6, 10**9)),
    batch=st.integers(1, 512),
)
def test_any_size_whose_one_batch_cannot_fit_is_refused_before_any_work(command, option, size, batch, data_root, checkpoint, tmp_path):
    out = tmp_path / "out"
    weights = [] if command == "train" else ["--weights", str(checkpoint)]
    argv = [command, *data_args(data_root), *weights, option, *map(str, size), "--batch-size", str(batch), "--out", str(out)]
    code, lines, _ = run_cli(argv if command != "evaluate" else argv[:-2])
    assert code == 2
    assert_one_error_line(lines, "input", (f"{option} {size[0]} {size[1]}: one batch of {batch} such images", "memory"))
    assert not out.exists()


# --- non-finite training and attacks: valid input, a computation that went NaN (exit code 3) ---------------------
NUMERICAL_EXIT_CODE = 3  # docs/files-and-errors.md#exit-codes

SLOPE_MODULE = """
import torch
from torch import nn


class InfiniteSlope(nn.Module):
    \"\"\"Finite features (channel means), but sqrt(|x - x|) adds 0 with an infinite slope: the input gradient is NaN.\"\"\"

    def forward(self, x):
        return x.mean(dim=(2, 3)) + (x - x.detach()).abs().sqrt().mean(dim=(2, 3))


def build():
    return InfiniteSlope()
"""


def test_training_that_diverges_stops_with_one_line_naming_the_epoch(data_root, tmp_path):
    argv = ["train", *data_args(data_root), *TRAIN_SMALL, "--epochs", "2", "--lr", "1e35", "--warmup-epochs", "0",
            "--out", str(tmp_path / "t")]  # fmt: skip
    code, lines, _ = run_cli(argv)
    assert code == NUMERICAL_EXIT_CODE
    assert_one_error_line(lines, "input", ("training epoch ", "not finite", "--lr"))


def test_an_attack_whose_gradient_is_nan_stops_with_one_line_and_exit_code_3(data_root, tmp_path, monkeypatch):
    (tmp_path / "slopenet.py").write_text(SLOPE_MODULE)
    monkeypatch.chdir(tmp_path)  # python: models are imported from the current directory
    monkeypatch.delitem(sys.modules, "slopenet", raising=False)
    out = tmp_path / "out"
    argv = ["attack", *data_args(data_root), "--model", "python:slopenet:build", "--input-size", "32", "16",
            "--steps", "3", "--out", str(out)]  # fmt: skip
    code, lines, _ = run_cli(argv)
    sys.modules.pop("slopenet", None)
    assert code == NUMERICAL_EXIT_CODE
    line = assert_one_error_line(lines, "input", ("non-finite attack loss or gradient (step 1 of 3",))
    assert "bad input" not in line and not (out / "results.json").exists()


# --- interruption: a real process, a real signal ----------------------------------------------------------
CHILD_ENV = {**os.environ, "PYTHONPATH": str(Path(metricattack.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


def spawn(argv: list[str]) -> subprocess.Popen:
    """``metricattack ARGV`` in its own process (stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "metricattack", *argv], env=CHILD_ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell may have ignored SIGINT
    )  # fmt: skip


def start_run(data_root, checkpoint, out: Path) -> subprocess.Popen:
    config = out.parent / "many.yaml"
    config.write_text("settings:\n" + "".join(f"  - {{attack: ifgsm, eps: {eps}, steps: 3}}\n" for eps in range(1, 40)))
    return spawn(["run", *data_args(data_root), "--weights", str(checkpoint), "--config", str(config), "--out", str(out), "--examples", "0"])


def test_interrupted_run_says_how_to_resume(data_root, checkpoint, tmp_path):
    """SIGINT once a setting is saved, SIGTERM as soon as the sweep holds its folder (both processes run at once)."""
    runs = {}
    for signum, code, marker in ((signal.SIGINT, 130, "results.json"), (signal.SIGTERM, 143, LOCK_NAME)):
        (tmp_path / signum.name).mkdir()
        out = tmp_path / signum.name / "run"
        runs[signum] = (code, out, out / marker, start_run(data_root, checkpoint, out))
    for signum, (code, out, marker, process) in runs.items():
        deadline = time.monotonic() + 300
        while not marker.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
    for signum, (code, out, marker, process) in runs.items():
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == code, stderr
        *held, last = stderr.splitlines()  # a signal inside a chunk first says that the chunk is being finished
        assert held in ([], [HELD_MESSAGE]) and last.startswith("metricattack: interrupted; the finished settings and chunks are saved in"), stderr
        assert not (out / LOCK_NAME).exists()
        resume = shlex.split(last.split("continue with: ")[1])
        assert resume[0] == "metricattack" and resume[-1] == "--resume" and resume[resume.index("--out") + 1] == str(out)
    saved = json.loads((runs[signal.SIGINT][1] / "results.json").read_text())["results"]
    assert 1 <= len(saved) < 39  # the finished settings, whole


def test_an_out_folder_that_cannot_be_written_is_refused_up_front(data_root, checkpoint, tmp_path):
    """An immutable parent (chattr +i; permission bits do not stop root) makes --out unwritable."""
    locked = tmp_path / "immutable"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        code, lines, _ = run_cli(["run", *data_args(data_root), "--weights", str(checkpoint), "--out", str(locked / "run")])
        assert code == 2
        assert_one_error_line(lines, "usage", ("--out", f"cannot write in {locked}"))
        assert not any(locked.iterdir())
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
