"""A user's own network (python:MODULE:FACTORY), TorchScript / torch.export files, and model references."""

from __future__ import annotations

import importlib.util
import io
import json
import pathlib
import pickle
import sys
import textwrap
import warnings
import zipfile

import pytest
import torch

from metricattack.cli import main
from metricattack.errors import InputError
from metricattack.experiment.inputs import model_from_reference
from metricattack.models import ModelOptions, load_model
from metricattack.models.references import ModelReference, parse_reference

USER_MODULE = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """Not in metricattack's registry: conv, BN, ReLU, global max pooling."""

    def __init__(self, channels=3, flat=True):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.flat = flat

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return x.amax(dim=(2, 3)) if self.flat else x


def build():
    return TinyNet()


def gray():
    return TinyNet(channels=1)


def maps():
    return TinyNet(flat=False)


def number():
    return 3
'''
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript files still exist


@pytest.fixture
def usernet(tmp_path, monkeypatch):
    """The module above as usernet.py in the current directory (not on sys.path: the loader adds it);
    yields an independent copy of it, for references."""
    (tmp_path / "usernet.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "usernet", raising=False)
    spec = importlib.util.spec_from_file_location("usernet_reference", tmp_path / "usernet.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    yield reference
    sys.modules.pop("usernet", None)


def perturbed(net, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return net.eval()


def expected_features(net, images, mean=MEAN, std=STD):
    """The network on images normalised by hand (same size: no resize)."""
    with torch.no_grad():
        return net((images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))


def images(seed=2):
    return torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


OPTIONS = ModelOptions(input_size=(64, 32), mean=MEAN, std=STD, distance="cosine", normalize=True)


def test_python_factory_with_weights_gives_the_modules_features(usernet, tmp_path):
    net = perturbed(usernet.build())
    torch.save({"state_dict": net.state_dict()}, tmp_path / "w.pth")
    model, meta = load_model("python:usernet:build", tmp_path / "w.pth", options=OPTIONS)
    assert meta["spec"]["arch"] == "python:usernet:build" and meta["spec"]["feature_dim"] == 8
    assert model.spec.metric == "cosine" and model.spec.normalize and model.spec.input_size == (64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images()), expected_features(net, images()))


def test_python_factory_weights_that_do_not_fit_are_refused(usernet, tmp_path):
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "w.pth")
    with pytest.raises(InputError, match=r"w\.pth: checkpoint does not fit python:usernet:build: 6 missing keys: bn.bias"):
        load_model("python:usernet:build", tmp_path / "w.pth")


@pytest.mark.parametrize(
    "factory, message",
    [
        ("gray", r"model python:usernet:gray does not accept images of shape \(2, 3, 64, 32\) .*RuntimeError"),
        ("maps", r"model python:usernet:maps maps images of shape \(2, 3, 64, 32\) to \(2, 8, 64, 32\); expected features of shape \(2, D\)"),
        ("number", r"python:usernet:number: the factory returned a int, expected a torch.nn.Module"),
        ("missing", r"python:usernet:missing: usernet has no callable missing"),
    ],
)
def test_models_that_reject_the_images_fail_in_one_line(usernet, factory, message):
    with pytest.raises(InputError, match=message) as info:
        load_model(f"python:usernet:{factory}", options=ModelOptions(input_size=(64, 32)))
    assert "\n" not in str(info.value)


def test_unimportable_module_is_one_line(usernet):
    with pytest.raises(InputError, match=r"python:nosuchmodule:build: cannot import nosuchmodule"):
        load_model("python:nosuchmodule:build")
    with pytest.raises(InputError, match=r"expected python:PACKAGE.MODULE:FACTORY"):
        load_model("python:usernet")


def test_torchscript_and_exported_programs_give_the_networks_features(usernet, tmp_path):
    net = perturbed(usernet.build())
    torch.jit.script(net).save(str(tmp_path / "net.pt"))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(net, (torch.rand(2, 3, 64, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "net.pt2")
    for name in ("net.pt", "net.pt2"):
        model, _ = load_model(f"torchscript:{tmp_path / name}", options=OPTIONS)
        with torch.no_grad():
            torch.testing.assert_close(model(images()), expected_features(net, images()))
        model.train().eval()  # an exported graph's mode is fixed (its own train() raises): ours must still switch
        with torch.no_grad():
            torch.testing.assert_close(model(images()), expected_features(net, images()))


def test_torchscript_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.pt: not a readable TorchScript file"):
        load_model(f"torchscript:{tmp_path / 'junk.pt'}")
    with pytest.raises(InputError, match=r"missing\.pt: file not found"):
        load_model(f"torchscript:{tmp_path / 'missing.pt'}")
    with pytest.raises(InputError, match=r"--weights w\.pth: a TorchScript file holds its own weights"):
        load_model(f"torchscript:{tmp_path / 'junk.pt'}", "w.pth")


def test_exported_program_at_another_input_size_is_refused(usernet, tmp_path):
    program = torch.export.export(usernet.build().eval(), (torch.rand(2, 3, 64, 32),))  # static batch and size
    torch.export.save(program, tmp_path / "fixed.pt2")
    with pytest.raises(InputError, match=r"model torchscript:.*fixed\.pt2 does not accept images of shape \(2, 3, 128, 64\)"):
        load_model(f"torchscript:{tmp_path / 'fixed.pt2'}", options=ModelOptions(input_size=(128, 64)))


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("default", ModelReference()),
        ("runs/x/model.safetensors", ModelReference(None, "runs/x/model.safetensors")),
        ("resnet50:model.pth.tar-60", ModelReference("resnet50", "model.pth.tar-60")),
        ("torchreid:osnet_x1_0", ModelReference("torchreid:osnet_x1_0")),
        ("torchreid:osnet_x1_0:log/model.pth.tar-60", ModelReference("torchreid:osnet_x1_0", "log/model.pth.tar-60")),
        ("python:pkg.nets:make", ModelReference("python:pkg.nets:make")),
        ("python:pkg.nets:make:w.pth", ModelReference("python:pkg.nets:make", "w.pth")),
        ("torchscript:a/net.pt", ModelReference("torchscript:a/net.pt")),
        ("fastreid:logs/model_final.pth", ModelReference("fastreid:logs/model_final.pth")),
        (
            "{model: 'torchreid:osnet_x1_0', weights: w.pth, input_size: [384, 128], distance: cosine, normalize: true, name: osnet}",
            ModelReference("torchreid:osnet_x1_0", "w.pth", "auto", ModelOptions((384, 128), None, None, "cosine", True), "osnet"),
        ),
        ({"model": "python:pkg.nets:make", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
         ModelReference("python:pkg.nets:make", None, "auto", ModelOptions(None, (0.5,) * 3, (0.5,) * 3))),
    ],
)
def test_reference_forms(reference, expected):
    assert parse_reference(reference) == expected


@pytest.mark.parametrize(
    "reference, expected",
    [("default", "default"), ("torchreid:osnet_x1_0", "osnet_x1_0"), ("torchreid:osnet_x1_0:log/m.pth.tar-60", "m.pth"),
     ("python:pkg.nets:make", "make"), ("torchscript:a/net.pt2", "net"), ("resnet50", "resnet50"),
     ({"model": "python:pkg.nets:make", "name": "mine"}, "mine")],
)
def test_reference_display_names(reference, expected):
    assert parse_reference(reference).display_name == expected


@pytest.mark.parametrize(
    "reference, message",
    [
        ({"model": "resnet50", "colour": 1}, r"unknown keys \['colour'\]"),
        ({"model": "resnet50", "distance": "manhattan"}, r"distance: expected one of euclidean, sqeuclidean, cosine"),
        ({"model": "resnet50", "input_size": "256x128"}, r"input-size: expected two positive integers H W, got '256x128'"),
        ({"model": "resnet50", "std": [1, 0, 1]}, r"std: expected three positive numbers"),
        ({"model": "resnet50", "normalize": "yes"}, r"normalize: expected true or false"),
        ({"model": "torchreid:osnet_x1_0:a.pth", "weights": "b.pth"}, r"weights given twice"),
        ("{model: [", r"not valid YAML"),
        ("missing.yaml", r"missing\.yaml: not found"),
    ],
)
def test_bad_references_are_one_line_errors(reference, message):
    with pytest.raises(InputError, match=message):
        parse_reference(reference, "--target-model")


def test_model_card_yaml_file(usernet, tmp_path):
    net = perturbed(usernet.build())
    torch.save(net.state_dict(), tmp_path / "w.pth")
    (tmp_path / "card.yaml").write_text(
        "model: python:usernet:build\nweights: w.pth\ninput_size: [64, 32]\nmean: [0.5, 0.4, 0.3]\nstd: [0.2, 0.25, 0.3]\n"
    )
    named = model_from_reference("card.yaml")
    assert named.name == "w"
    with torch.no_grad():
        torch.testing.assert_close(named.model(images()), expected_features(net, images()))


def test_options_override_our_models_too(tmp_path):
    model, meta = load_model(options=ModelOptions(input_size=(64, 32), distance="cosine", normalize=False))
    assert model.spec.input_size == (64, 32) and model.spec.metric == "cosine" and not model.spec.normalize
    assert meta["spec"]["metric"] == "cosine"


def test_attack_cli_with_a_python_model_and_a_torchscript_target_from_yaml(usernet, tiny_root, tmp_path, capsys):
    """The user's module attacked from the CLI; its TorchScript copy (same weights) must score the same."""
    net = perturbed(usernet.build())
    torch.save(net.state_dict(), tmp_path / "w.pth")
    torch.jit.script(net).save(str(tmp_path / "net.pt"))
    (tmp_path / "run.yaml").write_text(textwrap.dedent("""\
        model: python:usernet:build
        weights: w.pth
        input_size: [64, 32]
        mean: [0.5, 0.4, 0.3]
        std: [0.2, 0.25, 0.3]
        distance: cosine
        target_model:
          - {model: torchscript:net.pt, input_size: [64, 32], mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3],
             distance: cosine, name: scripted}
        """))
    args = ["attack", "--config", "run.yaml", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
            "--eps", "4", "--steps", "2", "--examples", "0", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    targets = record["models"]["targets"]
    assert record["models"]["sources"] == ["w"]
    assert targets["w"]["arch"] == "python:usernet:build" and targets["w"]["metric"] == "cosine"
    assert targets["scripted"]["arch"] == "torchscript:net.pt"
    clean, white_box = record["clean"], {row["target"]: row for row in record["results"]}
    assert clean["w"]["mAP"] == pytest.approx(clean["scripted"]["mAP"])
    assert white_box["w"]["mAP"] == pytest.approx(white_box["scripted"]["mAP"])
    assert white_box["w"]["mAP"] < clean["w"]["mAP"]


def test_cli_model_that_rejects_images_exits_2_with_one_line(usernet, tiny_root, capsys):
    args = ["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
            "--model", "python:usernet:gray", "--input-size", "64", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "python:usernet:gray does not accept images of shape (2, 3, 64, 32)" in err
    with pytest.raises(SystemExit):  # argparse's own error: usage + one line, exit 2
        main([*args, "--std", "0", "1", "1"])
    assert "argument --std: expected a number > 0" in capsys.readouterr().err


def test_torchreid_not_installed_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchreid", None)  # import torchreid now raises ImportError
    with pytest.raises(InputError, match=r"needs torchreid, which is not importable .*: pip install 'metricattack\[torchreid\]'"):
        load_model("torchreid:osnet_x1_0")


# --- hostile model sources from the command line: one line on stderr, exit code 2, no warning or log ---------------
BROKEN_MODULES = {
    "factory raises": ("def build():\n    raise RuntimeError('cannot reach the weights server\\nretry later')\n",
                       ("--model python:brokennet:build", "the factory raised RuntimeError: cannot reach the weights server")),
    "syntax error": ("def build(:\n    pass\n", ("--model python:brokennet:build", "cannot import brokennet (SyntaxError: ")),
    "import raises": ("raise OSError('no GPU here')\n", ("cannot import brokennet (OSError: no GPU here)",)),
    "factory needs arguments": ("def build(depth):\n    pass\n", ("the factory raised TypeError", "depth")),
}  # fmt: skip


def cli_error(argv, capfd) -> tuple[int, list[str], list[str]]:
    """Run the CLI here: (exit code, stderr lines, warnings); stderr at the descriptor level, so torch's own logging is caught."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    return code, capfd.readouterr().err.splitlines(), [str(w.message) for w in caught]


@pytest.mark.parametrize("case", BROKEN_MODULES, ids=list(BROKEN_MODULES))
def test_a_broken_python_module_is_one_line(case, tiny_root, tmp_path, monkeypatch, capfd):
    source, words = BROKEN_MODULES[case]
    (tmp_path / "brokennet.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])  # the loader adds the cwd
    monkeypatch.delitem(sys.modules, "brokennet", raising=False)
    importlib.invalidate_caches()
    code, lines, caught = cli_error(["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
                                     "--model", "python:brokennet:build"], capfd)  # fmt: skip
    sys.modules.pop("brokennet", None)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("metricattack: error: "), lines
    assert all(word in lines[0] for word in words), lines
    assert not caught


def pickled(path):
    torch.save({"net": torch.nn.Linear(2, 2)}, path)  # a whole pickled module, not weights
    return path


NOT_PROGRAMS = {
    "garbage.pt": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "text.pt": lambda p: p.write_text("def forward(x):\n    return x\n"),
    "raw-pickle.pt": lambda p: p.write_bytes(pickle.dumps({"weights": [1.0, 2.0]})),
    "torch-save.pt": pickled,
    "garbage.pt2": lambda p: p.write_bytes(b"\x00garbage" * 50),
    "text.pt2": lambda p: p.write_text("not an exported program\n"),
    "torch-save.pt2": pickled,
}


@pytest.mark.parametrize("name", NOT_PROGRAMS)
def test_a_file_that_is_not_a_program_is_one_line_without_warnings_or_logs(name, tiny_root, tmp_path, capfd):
    NOT_PROGRAMS[name](tmp_path / name)
    code, lines, caught = cli_error(["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
                                     "--model", f"torchscript:{tmp_path / name}"], capfd)  # fmt: skip
    kind = "torch.export program" if name.endswith(".pt2") else "TorchScript file"
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"metricattack: error: --model torchscript:{tmp_path / name}: not a readable {kind} ("), lines
    assert not caught


class RunsCode:
    """Unpickling this creates ``path``: what a crafted file would do instead."""

    def __init__(self, path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_an_exported_program_holding_a_pickled_object_is_refused_unopened(usernet, tmp_path):
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(usernet.build().eval(), (torch.rand(2, 3, 64, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "net.pt2")
    buffer = io.BytesIO()
    torch.save(RunsCode(tmp_path / "ran"), buffer)
    with zipfile.ZipFile(tmp_path / "net.pt2") as source, zipfile.ZipFile(tmp_path / "crafted.pt2", "w") as crafted:
        for item in source.infolist():  # torch.export.load would unpickle the sample inputs with weights_only=False
            crafted.writestr(item, buffer.getvalue() if item.filename.endswith("sample_inputs/model.pt") else source.read(item))
    with pytest.raises(InputError, match=r"crafted\.pt2: refused: the program holds pickled objects"):
        load_model(f"torchscript:{tmp_path / 'crafted.pt2'}", options=ModelOptions(input_size=(64, 32)))
    assert not (tmp_path / "ran").exists()
    load_model(f"torchscript:{tmp_path / 'net.pt2'}", options=ModelOptions(input_size=(64, 32)))  # the honest one loads
    assert torch.load is torch.serialization.load  # and torch.load is torch's own again


@pytest.mark.parametrize(
    "model, origin",
    [("python:usernet:build", "weights as built by the factory"), ("compact", "random weights"), (None, "bundled default"),
     ("default-robust", "bundled default-robust")],
)  # fmt: skip
def test_evaluate_says_where_the_weights_come_from(model, origin, usernet, tiny_root, capsys):
    args = ["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress", "--input-size", "64", "32"]
    assert main(args + (["--model", model] if model else [])) == 0
    assert f"({origin})" in capsys.readouterr().out
