"""torchreid's own models through ``--model torchreid:NAME``: our features must equal torchreid's forward.

Each model is built by torchreid with random weights, its normalisation statistics perturbed (so a
layer left at its initial values or a wrong mode cannot pass), saved with torchreid's own
``save_checkpoint``, and loaded through the same reference parsing the CLI uses. Skipped when the
optional extra (``pip install 'metricattack[torchreid]'``) is not installed; CI installs it.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from metricattack.cli import main
from metricattack.errors import InputError
from metricattack.evaluation import evaluate_features
from metricattack.models.features import extract_features
from metricattack.experiment.inputs import model_from_reference
from metricattack.models import load_model

from .perturbed_norms import perturb_norms

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torchreid = pytest.importorskip("torchreid")

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # torchreid's default normalisation
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def torchreid_checkpoint(name, folder, num_classes=7, seed=0):
    """A torchreid model with perturbed weights and norm statistics, saved by torchreid; returns (model, path)."""
    torch.manual_seed(seed)
    model = torchreid.models.build_model(name, num_classes=num_classes, loss="softmax", pretrained=False, use_gpu=False)
    perturb_norms(model, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = {"state_dict": model.state_dict(), "epoch": 60, "rank1": 0.5, "optimizer": optimizer.state_dict()}
    torchreid.utils.save_checkpoint(state, str(folder))
    return model.eval(), folder / "model.pth.tar-60"


def images(count=3, seed=1):
    return torch.rand(count, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["osnet_x1_0", "osnet_ain_x1_0", "mobilenetv2_x1_0", "resnet50_fc512", "densenet121"])
def test_torchreid_models_give_torchreid_features(name, tmp_path, capsys):
    source, path = torchreid_checkpoint(name, tmp_path)
    capsys.readouterr()  # save_checkpoint prints where it wrote
    batch = images()
    with torch.no_grad():
        expected = source((batch - MEAN) / STD)
        named = model_from_reference({"model": f"torchreid:{name}", "weights": str(path), "input_size": [64, 32]})
        ours = named.model(batch)
    assert named.name == "model.pth" and named.model.spec.arch == f"torchreid:{name}"
    assert named.model.spec.metric == "euclidean" and not named.model.spec.normalize
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "resnext50_32x4d"])
def test_torchreid_checkpoints_of_our_architectures_load_exactly(name, tmp_path, capsys):
    """``--model resnet50 --weights model.pth.tar-60`` (our own trunk) equals torchreid's forward."""
    source, path = torchreid_checkpoint(name, tmp_path)
    batch = images()
    with torch.no_grad():
        expected = source((batch - MEAN) / STD)
        features = model_from_reference({"model": f"{name}:{path}", "input_size": [64, 32]}).model(batch)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_torchreid_fc512_checkpoint_is_refused_as_resnet50(tmp_path, capsys):
    _, path = torchreid_checkpoint("resnet50_fc512", tmp_path)
    with pytest.raises(InputError, match=r"has fc layers, which torchreid's resnet50 does not"):
        load_model("resnet50", path)


def test_checkpoint_of_another_torchreid_model_is_refused(tmp_path, capsys):
    _, path = torchreid_checkpoint("osnet_x0_25", tmp_path)
    with pytest.raises(InputError, match=r"checkpoint does not fit torchreid:osnet_x0_5: .*wrong shape"):
        load_model("torchreid:osnet_x0_5", path)


def test_unknown_torchreid_name_lists_the_valid_ones():
    with pytest.raises(InputError, match=r"unknown torchreid model 'osnet_x9'.*osnet_x1_0"):
        load_model("torchreid:osnet_x9")


def test_evaluate_cli_with_a_torchreid_checkpoint(tiny_root, tiny_data, tmp_path, capsys):
    """The CLI's metrics equal those of torchreid's forward on the same images."""
    source, path = torchreid_checkpoint("osnet_x0_25", tmp_path)
    out = tmp_path / "m.json"
    args = ["evaluate", "--dataset", "market1501", "--data-root", str(tiny_root), "--no-progress",
            "--model", "torchreid:osnet_x0_25", "--weights", str(path), "--input-size", "64", "32", "--json", str(out)]
    assert main(args) == 0
    reference = torch.nn.Sequential()
    reference.forward = lambda batch: source((batch - MEAN) / STD)
    query = extract_features(reference, tiny_data.query, torch.device("cpu"), progress=False)
    gallery = extract_features(reference, tiny_data.gallery, torch.device("cpu"), progress=False)
    expected = evaluate_features(query.features, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids)
    assert json.loads(out.read_text())["mAP"] == pytest.approx(expected.mAP, abs=1e-6)
