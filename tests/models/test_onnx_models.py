"""``--model onnx:FILE``: onnxruntime's features, the onnx2torch graph's gradients, the white-box refusal, the CLI.

Exports use the legacy exporter (``dynamo=False``): in torch 2.14 the default dynamo exporter writes opset 18
whatever ``opset_version`` below 18 asks for, and onnx2torch 1.5.15 converts no graph of opset 18 or later
that reduces a mean (ReduceMean 18) or holds a constant (Constant 19).
"""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx2torch")

from metricattack.cli import main  # noqa: E402
from metricattack.cli.wiring import refuse_white_box_problems  # noqa: E402
from metricattack.errors import InputError  # noqa: E402
from metricattack.experiment.plans import Job  # noqa: E402
from metricattack.experiment.setting import AttackSetting, NamedModel  # noqa: E402
from metricattack.models import ModelOptions, build_model, load_model  # noqa: E402
from metricattack.models import onnx as onnx_source  # noqa: E402
from metricattack.models.onnx import white_box_problem  # noqa: E402
from metricattack.models.references import parse_reference  # noqa: E402

SIZE = (32, 16)
IDENTITY = ModelOptions(mean=(0.0,) * 3, std=(1.0,) * 3)  # the exported model normalises the images itself
REFUSED = r"white-box attacks need a differentiable graph, but onnx2torch cannot convert it \(no converter for Constant version 19\)"


def export(model: torch.nn.Module, path, opset: int, size=SIZE, batch: int | None = None, dynamic_size: bool = False):
    """``model`` (a whole ReIDModel: images in [0,1] -> features) as ONNX; ``batch`` fixes the batch size."""
    axes = ({} if batch else {0: "batch"}) | ({2: "height", 3: "width"} if dynamic_size else {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and the tracer's warnings
        torch.onnx.export(model, (torch.rand(batch or 2, 3, *size),), str(path), opset_version=opset, dynamo=False,
                          input_names=["images"], output_names=["features"], dynamic_axes={"images": axes} if axes else None)
    return path


@pytest.fixture(scope="module")
def net():
    """A compact model (32x16) with random weights; BN statistics moved off their defaults so features vary."""
    torch.manual_seed(0)
    model = build_model("compact", input_size=SIZE).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "running" in name:
                tensor.mul_(1 + 0.2 * torch.rand(tensor.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def exported(net, tmp_path_factory):
    """opset -> the ONNX file of ``net``, dynamic batch."""
    folder = tmp_path_factory.mktemp("onnx")
    return {opset: export(net, folder / f"net{opset}.onnx", opset) for opset in (12, 17, 19)}


def images(batch: int = 3, seed: int = 2, size=(64, 32)) -> torch.Tensor:
    return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding, relative to the tensors' scale."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("opset", [12, 17, 19])
def test_onnxruntime_gives_the_networks_features_at_the_graphs_input_size(opset, net, exported):
    model, meta = load_model(f"onnx:{exported[opset]}", options=IDENTITY)
    assert model.spec.input_size == SIZE and meta["spec"]["feature_dim"] == 128  # read from the graph
    assert meta["spec"]["arch"] == f"onnx:{exported[opset]}" and not model.spec.normalize and model.spec.metric == "euclidean"
    with torch.no_grad():
        close(model(images()), net(images()))


@pytest.mark.parametrize("opset", [12, 17])
def test_the_converted_graph_gives_pytorchs_gradients(opset, net, exported):
    model, _ = load_model(f"onnx:{exported[opset]}", options=IDENTITY)
    assert white_box_problem(model) is None and model.network.graph is not None
    weights = torch.randn(3, 128, generator=torch.Generator().manual_seed(3))
    ours, theirs = images().requires_grad_(), images().requires_grad_()
    features = model(ours)
    (features * weights).sum().backward()
    (net(theirs) * weights).sum().backward()
    close(features.detach(), net(images()).detach())
    close(ours.grad, theirs.grad)


def test_opset_19_evaluates_but_refuses_gradients_in_one_line(net, exported):
    model, _ = load_model(f"onnx:{exported[19]}", options=IDENTITY)
    problem = white_box_problem(model)
    assert problem.startswith(f"--model onnx:{exported[19]}: ") and "\n" not in problem
    assert "opset_version=17, dynamo=False" in problem and "--target-model" in problem and "--attack blackbox" in problem
    with pytest.raises(InputError, match=REFUSED):
        model(images().requires_grad_())
    with torch.enable_grad():  # gradients on, but the images need none: onnxruntime
        close(model(images()), net(images()).detach())


def test_a_fixed_batch_size_is_served_in_slices_with_gradients_too(net, tmp_path):
    model, _ = load_model(f"onnx:{export(net, tmp_path / 'one.onnx', 17, batch=1)}", options=IDENTITY)
    assert model.network.session.batch_size == 1 and white_box_problem(model) is None
    ours, theirs = images(3).requires_grad_(), images(3).requires_grad_()
    model(ours).sum().backward()
    net(theirs).sum().backward()
    close(ours.grad, theirs.grad)
    with torch.no_grad():
        close(model(images(3)), net(images(3)))


def test_a_fixed_input_size_is_the_graphs_and_a_dynamic_one_the_users(net, tmp_path, exported):
    with pytest.raises(InputError, match=r"--input-size 64 32: the graph in .*net17\.onnx takes images of 32x16 only"):
        load_model(f"onnx:{exported[17]}", options=ModelOptions(input_size=(64, 32)))
    model, _ = load_model(f"onnx:{export(net, tmp_path / 'any.onnx', 17, dynamic_size=True)}", options=ModelOptions(input_size=(48, 24)))
    assert model.spec.input_size == (48, 24)


def test_features_that_differ_from_onnxruntime_keep_the_model_for_evaluation_only(exported, monkeypatch):
    monkeypatch.setattr(onnx_source, "MATCH_TOLERANCE", -1.0)
    model, _ = load_model(f"onnx:{exported[17]}", options=IDENTITY)
    assert "its onnx2torch conversion gives other features than onnxruntime (largest difference" in white_box_problem(model)


def test_references_name_onnx_files_by_their_stem():
    reference = parse_reference("onnx:exports/osnet.onnx")
    assert reference.model == "onnx:exports/osnet.onnx" and reference.weights is None
    assert reference.display_name == "osnet" and reference.weights_origin == "weights in the file"
    assert white_box_problem(build_model("compact", input_size=SIZE)) is None  # any model: None


def test_the_cli_refuses_before_work_for_every_white_box_setting_and_its_job_sources(exported):
    opaque, _ = load_model(f"onnx:{exported[19]}", options=IDENTITY)
    plain = NamedModel("plain", build_model("compact", input_size=SIZE).eval())
    onnx19 = NamedModel("onnx19", opaque)
    blackbox = AttackSetting("blackbox", 8, side="query", steps=5)
    refuse_white_box_problems([blackbox], [onnx19])  # rankings only: no gradients needed
    refuse_white_box_problems([AttackSetting("ifgsm", 4)], [plain])
    for settings, sources, models in [([AttackSetting("ifgsm", 4)], [onnx19], None),
                                      ([AttackSetting("uap", 8, side="query")], [plain, onnx19], None),
                                      ([Job(AttackSetting("fgsm", 4), source="x.onnx")], [plain], {"x.onnx": onnx19})]:
        with pytest.raises(InputError, match=REFUSED):
            refuse_white_box_problems(settings, sources, models)


def test_without_the_onnx_extra_the_error_says_how_to_install_it(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # importing it now raises ImportError
    with pytest.raises(InputError, match=r"^--model onnx:FILE needs the onnx extra: pip install 'metricattack\[onnx\]'$"):
        load_model(f"onnx:{exported[17]}")


# --- bad ONNX files from the command line: one line on stderr, exit code 2, no warning ----------------------------------
def graph_file(path, input_type=onnx.TensorProto.FLOAT, input_shape=("batch", 3, 32, 16), output_shape=("batch", 3, 32, 16)):
    """A one-node ONNX graph (Identity) with the given input type and shapes."""
    helper = onnx.helper
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g",
                              [helper.make_tensor_value_info("images", input_type, input_shape)],
                              [helper.make_tensor_value_info("out", input_type, output_shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


BAD_FILES = {
    "missing.onnx": (lambda p: None, "file not found"),
    "garbage.onnx": (lambda p: p.write_bytes(bytes(range(256)) * 4), "not a readable ONNX model ("),
    "empty.onnx": (lambda p: p.write_bytes(b""), "not a readable ONNX model ("),
    "text.onnx": (lambda p: p.write_text("graph { node { op_type: 'Relu' } }\n"), "not a readable ONNX model ("),
    "ints.onnx": (lambda p: graph_file(p, onnx.TensorProto.INT64), "the graph's input images is a tensor(int64), expected float images"),
    "maps.onnx": (graph_file, "maps images of shape (2, 3, 32, 16) to (2, 3, 32, 16); expected features of shape (2, D)"),
}  # fmt: skip


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_onnx_file_is_one_line_exit_2_without_warnings(name, tiny_root, tmp_path, capfd):
    make, words = BAD_FILES[name]
    make(tmp_path / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
                     "--model", f"onnx:{tmp_path / name}"])  # fmt: skip
    lines = capfd.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("metricattack: error: ") and words in lines[0], lines
    assert not caught


@pytest.mark.parametrize("extra, words", [([], "unknown model 'onnx:"), (["--weights", "w.onnx"], "an ONNX file holds its own weights")])
def test_train_refuses_an_onnx_model(extra, words, exported, tiny_root, tmp_path, capsys):
    args = ["train", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", "--model", f"onnx:{exported[17]}",
            "--out", str(tmp_path / "train"), *extra]  # fmt: skip
    assert main(args) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and words in lines[0] and not (tmp_path / "train").exists()


# --- the command line on the bundled default model, exported -----------------------------------------------------------
@pytest.fixture(scope="module")
def default_exports(tmp_path_factory):
    """opset -> the bundled default model exported whole (its own resize and normalisation inside) at its 128x64."""
    model, _ = load_model()
    folder = tmp_path_factory.mktemp("default")
    return {opset: export(model, folder / f"default{opset}.onnx", opset, size=model.spec.input_size) for opset in (17, 19)}


def attack(tiny_root, out, *extra) -> dict:
    """``metricattack attack`` on the tiny data (4 px, 2 steps), its results.json."""
    args = ["attack", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", "--eps", "4", "--steps", "2",
            "--examples", "0", "--seed", "0", "--out", str(out), *extra]  # fmt: skip
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def onnx_model(path) -> list[str]:
    """The options that make the exported default model the default model: no normalisation of ours, its distance."""
    return ["--model", f"onnx:{path}", "--mean", "0", "0", "0", "--std", "1", "1", "1", "--input-size", "128", "64", "--normalize"]


def test_the_default_model_exported_at_opset_17_is_attacked_white_box_like_the_original(default_exports, tiny_root, tmp_path):
    original = attack(tiny_root, tmp_path / "torch")
    exported = attack(tiny_root, tmp_path / "onnx", *onnx_model(default_exports[17]))
    assert exported["clean"]["default17"]["mAP"] == pytest.approx(original["clean"]["default"]["mAP"], abs=1e-6)
    (ours,), (theirs,) = exported["results"], original["results"]
    assert ours["mAP"] < exported["clean"]["default17"]["mAP"] - 0.1  # the attack works through the converted graph
    assert abs(ours["mAP"] - theirs["mAP"]) <= 0.002  # within 0.2 points of mAP


def test_opset_19_is_refused_white_box_but_serves_as_target_and_black_box_source(default_exports, tiny_root, tmp_path, capfd):
    path = default_exports[19]
    code = main(["attack", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", *onnx_model(path),
                 "--out", str(tmp_path / "refused")])  # fmt: skip
    lines = capfd.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1 and f"--model onnx:{path}: white-box attacks need a differentiable graph" in lines[0]
    assert not (tmp_path / "refused").exists()
    code = main(["run", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", *onnx_model(path),
                 "--out", str(tmp_path / "run")])  # the default plan's white-box settings
    assert code == 2 and "white-box attacks need a differentiable graph" in capfd.readouterr().err
    assert not (tmp_path / "run").exists()
    target = {"model": f"onnx:{path}", "mean": [0, 0, 0], "std": [1, 1, 1], "normalize": True, "name": "deployed"}
    record = attack(tiny_root, tmp_path / "target", "--target-model", json.dumps(target))
    rows = {row["target"]: row for row in record["results"]}
    assert record["clean"]["deployed"]["mAP"] == pytest.approx(record["clean"]["default"]["mAP"], abs=1e-6)
    assert rows["deployed"]["mAP"] == pytest.approx(rows["default"]["mAP"], abs=0.002)
    record = attack(tiny_root, tmp_path / "blackbox", *onnx_model(path), "--attack", "blackbox", "--side", "query", "--steps", "5")
    (row,) = record["results"]
    assert row["attack"] == "blackbox" and row["mAP"] <= record["clean"]["default19"]["mAP"]
