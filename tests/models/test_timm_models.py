"""timm's models through ``--model timm:NAME``: our features must equal timm's own feature extractor.

Each model is built by timm with random weights and a classifier, its normalisation layers perturbed
(so a layer left at its initial values cannot pass), saved as a state dict, and loaded through the
same reference parsing the CLI uses; the reference is ``timm.create_model(NAME, pretrained=False,
num_classes=0)`` holding the same weights, on the same images normalised with timm's mean/std.
Skipped when the optional extra (``pip install 'metricattack[timm]'``) is not installed; CI installs it.
"""

from __future__ import annotations

import json
import socket
import sys

import pytest
import torch

from metricattack.cli import main
from metricattack.errors import InputError
from metricattack.evaluation import evaluate_features
from metricattack.experiment.inputs import model_from_reference
from metricattack.models import ModelOptions, load_model
from metricattack.models.features import extract_features
from metricattack.models.references import parse_reference

timm = pytest.importorskip("timm")

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: building a timm model must download nothing."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading a timm model")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def perturbed(model, seed=0):
    """``model`` with its normalisation layers' weights and statistics moved off their initial values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.running_mean is not None:
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            if isinstance(module, (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm)) and module.weight is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def timm_weights(name, folder, seed=0, **kwargs):
    """A timm model with a 7-class classifier and perturbed weights, saved as ``{"state_dict": ...}``; returns (state, path)."""
    torch.manual_seed(seed)
    model = perturbed(timm.create_model(name, pretrained=False, num_classes=7, **kwargs), seed)
    path = folder / f"{name}.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    return model.state_dict(), path


def timm_extractor(name, state, mean, std, **kwargs):
    """timm's own feature extractor (num_classes=0) holding ``state`` (its classifier left out), on images
    in [0,1] normalised with ``mean`` / ``std``."""
    network = timm.create_model(name, pretrained=False, num_classes=0, **kwargs).eval()
    network.load_state_dict({k: v for k, v in state.items() if k in network.state_dict()})
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    extractor = torch.nn.Sequential()
    extractor.forward = lambda batch: network((batch - mean) / std)
    return extractor


def images(count=3, height=64, width=32, seed=1):
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "name, size, mean_std",
    [("resnet18", (64, 32), IMAGENET), ("convnext_atto", (64, 32), IMAGENET), ("vit_tiny_patch16_224", (32, 32), ((0.5,) * 3, (0.5,) * 3))],
)
def test_timm_models_give_timms_features(name, size, mean_std, tmp_path, no_network):
    """Also: the weights file holds a classifier (dropped), and a ViT is built at the input size asked for."""
    built_at = {"img_size": size} if name.startswith("vit") else {}
    state, path = timm_weights(name, tmp_path, **built_at)
    batch = images(height=size[0], width=size[1])
    named = model_from_reference({"model": f"timm:{name}:{path}", "input_size": list(size)})
    with torch.no_grad():
        ours = named.model(batch)
        expected = timm_extractor(name, state, *mean_std, **built_at)(batch)
    assert named.model.spec.arch == f"timm:{name}" and named.name == name
    assert named.model.spec.mean == pytest.approx(mean_std[0]) and named.model.spec.std == pytest.approx(mean_std[1])
    assert named.model.spec.feature_dim == expected.shape[1]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_input_size_mean_and_std_default_to_timms_config(no_network):
    model, meta = load_model("timm:vit_tiny_patch16_224")
    assert model.spec.input_size == (224, 224) and model.spec.mean == (0.5, 0.5, 0.5) and model.spec.std == (0.5, 0.5, 0.5)
    assert meta["spec"]["feature_dim"] == 192 and meta["weights"] is None
    assert model.spec.metric == "euclidean" and not model.spec.normalize  # as for any model that does not say


def test_the_users_options_replace_timms_config(no_network):
    options = ModelOptions(input_size=(32, 16), mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3), distance="cosine", normalize=True)
    model, _ = load_model("timm:resnet18", options=options)
    assert model.spec.input_size == (32, 16) and model.spec.mean == (0.4, 0.4, 0.4) and model.spec.std == (0.3, 0.3, 0.3)
    assert model.spec.metric == "cosine" and model.spec.normalize


def test_unknown_timm_name_is_one_line_with_close_names():
    with pytest.raises(InputError, match=r"^unknown timm model 'resnet1' \(close names: resnet18.*timm\.list_models\(\) lists all \d+\)$"):
        load_model("timm:resnet1")
    with pytest.raises(InputError, match=r"^--model timm:resnet18\.nope: timm cannot build it \(RuntimeError: Invalid pretrained tag"):
        load_model("timm:resnet18.nope")


def test_weights_of_another_model_are_one_line(tmp_path):
    _, path = timm_weights("resnet18", tmp_path)
    with pytest.raises(InputError, match=r"checkpoint does not fit timm:resnet34: \d+ missing keys: layer1\.2\.") as caught:
        load_model("timm:resnet34", path)
    assert "\n" not in str(caught.value)


def test_without_timm_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(InputError, match=r"--model timm:NAME needs timm, .*pip install 'metricattack\[timm\]'"):
        load_model("timm:resnet18")


def test_timm_references_parse_like_torchreid():
    reference = parse_reference("timm:resnet18.a1_in1k:runs/net.pth")
    assert (reference.model, reference.weights) == ("timm:resnet18.a1_in1k", "runs/net.pth")
    assert reference.display_name == "net" and parse_reference("timm:resnet18").display_name == "resnet18"
    assert parse_reference("timm:resnet18").weights_origin == "random weights"


def test_evaluate_cli_with_a_timm_model(tiny_root, tiny_data, tmp_path, no_network):
    """The CLI's metrics equal those of timm's own feature extractor on the same images."""
    state, path = timm_weights("resnet18", tmp_path)
    out = tmp_path / "m.json"
    args = ["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
            "--model", "timm:resnet18", "--weights", str(path), "--input-size", "64", "32", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    reference = timm_extractor("resnet18", state, *IMAGENET)
    query = extract_features(reference, tiny_data.query, torch.device("cpu"), progress=False)
    gallery = extract_features(reference, tiny_data.gallery, torch.device("cpu"), progress=False)
    expected = evaluate_features(query.features, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids)
    assert json.loads(out.read_text())["mAP"] == pytest.approx(expected.mAP, abs=1e-6)
