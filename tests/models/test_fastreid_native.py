"""fast-reid checkpoints (``fastreid:FILE``) built by fast-reid itself: our features must equal fast-reid's.

Each model is built by fast-reid (small input, random weights, normalisation layers perturbed so a layer
left at its initial values or a wrong mode cannot pass) and saved as fast-reid saves it: the checkpointer's
``{"model": state_dict, ...}`` beside the ``config.yaml`` written by ``cfg.dump()``. The reference is
fast-reid's own model in eval mode on the same images in [0,255]. Skipped when fast-reid is not installed
(``pip install --no-deps fastreid`` beside ``pip install 'metricattack[fastreid]'``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from metricattack.errors import InputError
from metricattack.experiment.inputs import model_from_reference
from metricattack.models import load_model
from metricattack.models.fastreid_native import inside
from .perturbed_norms import perturb_norms

fastreid_config = pytest.importorskip("fastreid.config")
fastreid_modeling = pytest.importorskip("fastreid.modeling")

R18 = {"MODEL.BACKBONE.DEPTH": "18x", "MODEL.BACKBONE.FEAT_DIM": 512}
MODELS = {
    "resnet50-ibn-nonlocal": {"MODEL.BACKBONE.WITH_IBN": True, "MODEL.BACKBONE.WITH_NL": True},
    "resnet18-se-gem-embedding": {**R18, "MODEL.BACKBONE.WITH_SE": True, "MODEL.HEADS.POOL_LAYER": "GeneralizedMeanPoolingP",
                                  "MODEL.HEADS.EMBEDDING_DIM": 64, "MODEL.HEADS.WITH_BNNECK": True, "TEST.METRIC": "euclidean"},
    "osnet-ibn": {"MODEL.BACKBONE.NAME": "build_osnet_backbone", "MODEL.BACKBONE.DEPTH": "x0_25", "MODEL.BACKBONE.FEAT_DIM": 128,
                  "MODEL.BACKBONE.WITH_IBN": True, "MODEL.HEADS.WITH_BNNECK": True},
    "regnet": {"MODEL.BACKBONE.NAME": "build_regnet_backbone", "MODEL.BACKBONE.DEPTH": "200x", "MODEL.BACKBONE.FEAT_DIM": 368},
    "mgn": {"MODEL.META_ARCHITECTURE": "MGN", "INPUT.SIZE_TEST": [96, 32]},  # the 3-part branch needs 6 rows of features
}  # fmt: skip


def fastreid_cfg(settings):
    """fast-reid's config with ``settings`` (dotted keys), 64x32 input, CPU, 7 classes."""
    cfg = fastreid_config.get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "INPUT.SIZE_TEST", [64, 32], "MODEL.HEADS.NUM_CLASSES", 7])
    for key, value in settings.items():
        cfg.merge_from_list([key, value])
    return cfg


def perturbed(model, seed=0):
    """``model`` with its normalisation layers' weights and statistics moved off their initial values."""
    perturb_norms(model, seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(".W.1"):  # a non-local block's output BN (0 at init: the block is the identity):
                module.weight.mul_(1e-3)  # on, but small, or the features of random weights overflow
    return model.eval()


def fastreid_checkpoint(folder, settings, seed=0, written_classes=None):
    """A model built by fast-reid, saved as its checkpointer and its training do; returns (model, cfg, path).

    ``written_classes`` replaces NUM_CLASSES in config.yaml (fast-reid's training first writes the config
    with the number it was given, 0 when it is to be counted from the data)."""
    torch.manual_seed(seed)
    cfg = fastreid_cfg(settings)
    with inside(Path(fastreid_config.__file__).parents[2]):  # RegNet's builder reads its YAML relative to there
        model = perturbed(fastreid_modeling.build_model(cfg), seed)
    path = folder / "model_final.pth"
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "iteration": 99}, path)
    written = cfg.clone()
    if written_classes is not None:
        written.MODEL.HEADS.NUM_CLASSES = written_classes
    (folder / "config.yaml").write_text(written.dump())
    return model, cfg, path


def fastreid_features(model, images):
    """fast-reid's eval forward: images in [0,255] (normalised inside, in place, so on a copy)."""
    with torch.no_grad():
        return model(images * 255)


def images(count=3, height=64, width=32, seed=1):
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(MODELS))
def test_fastreid_models_give_fastreids_features(name, tmp_path, capsys, monkeypatch):
    model, cfg, path = fastreid_checkpoint(tmp_path, MODELS[name])
    monkeypatch.chdir(tmp_path)  # loading works from any folder (and leaves the current folder as it was)
    batch = images(height=cfg.INPUT.SIZE_TEST[0])
    named = model_from_reference(f"fastreid:{path}")
    with torch.no_grad():
        ours = named.model(batch)
    expected = fastreid_features(model, batch)
    scale = float(expected.abs().max())
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6 * scale)
    spec = named.model.spec
    assert spec.input_size == tuple(cfg.INPUT.SIZE_TEST) and spec.feature_dim == expected.shape[1]
    assert spec.metric == cfg.TEST.METRIC and spec.normalize == (cfg.TEST.METRIC == "cosine")
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406)) and spec.std == pytest.approx((0.229, 0.224, 0.225))
    assert capsys.readouterr() == ("", "") and tmp_path.samefile(".")


def test_gradients_flow_and_the_images_are_left_alone(tmp_path):
    """fast-reid normalises in place; ours hands it a normalised copy, so attacks get gradients of the clean images."""
    model, _, path = fastreid_checkpoint(tmp_path, R18)
    ours, _ = load_model(f"fastreid:{path}")
    batch = images().requires_grad_(True)
    kept = batch.detach().clone()
    features = ours(batch)
    features.sum().backward()
    assert torch.equal(batch.detach(), kept) and batch.grad is not None and batch.grad.abs().sum() > 0
    torch.testing.assert_close(features.detach(), fastreid_features(model, kept), rtol=1e-5, atol=1e-5)


def test_classifier_size_is_taken_from_the_checkpoint(tmp_path):
    """config.yaml written before training says NUM_CLASSES 0; the checkpoint's classifier has 7 rows."""
    model, _, path = fastreid_checkpoint(tmp_path, R18, written_classes=0)
    ours, _ = load_model(f"fastreid:{path}")
    with torch.no_grad():
        torch.testing.assert_close(ours(images()), fastreid_features(model, images()), rtol=1e-5, atol=1e-5)


def test_weights_the_config_does_not_explain_are_one_line(tmp_path):
    """An IBN checkpoint whose config says no IBN: missing and unexpected keys, in one line."""
    _, cfg, path = fastreid_checkpoint(tmp_path, {**R18, "MODEL.BACKBONE.WITH_IBN": True})
    cfg.MODEL.BACKBONE.WITH_IBN = False
    (tmp_path / "config.yaml").write_text(cfg.dump())
    with pytest.raises(InputError, match=r"read as fast-reid Baseline\): checkpoint does not fit fastreid:.*missing keys.*unexpected keys: backbone\.layer1\.0\.bn1\.BN\.") as caught:
        load_model(f"fastreid:{path}")
    assert "\n" not in str(caught.value)


def test_configs_fastreid_cannot_read_or_build_are_one_line(tmp_path):
    _, cfg, path = fastreid_checkpoint(tmp_path, R18)
    (tmp_path / "config.yaml").write_text(cfg.dump().replace("WITH_SE: false", "WITH_SE: false\n    WITH_XYZ: true"))
    with pytest.raises(InputError, match=r"config\.yaml: fast-reid cannot read it \(KeyError: .*WITH_XYZ"):
        load_model(f"fastreid:{path}")
    cfg.MODEL.META_ARCHITECTURE = "FastAttr"  # a fast-reid project's, not in the package
    (tmp_path / "config.yaml").write_text(cfg.dump())
    with pytest.raises(InputError, match=r"fast-reid cannot build FastAttr with build_resnet_backbone 18x \(KeyError: .*FastAttr"):
        load_model(f"fastreid:{path}")
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(InputError, match=r"config\.yaml: not found \(expected the config\.yaml fast-reid's training writes"):
        load_model(f"fastreid:{path}")


def test_an_installed_fastreid_that_cannot_import_says_what_to_install(tmp_path, monkeypatch):
    _, _, path = fastreid_checkpoint(tmp_path, R18)
    monkeypatch.setitem(sys.modules, "fastreid.modeling", None)  # as when one of its imports is missing
    with pytest.raises(InputError, match=r"fast-reid is installed but not importable .*pip install 'metricattack\[fastreid\]'"):
        load_model(f"fastreid:{path}")
