"""fast-reid Baseline checkpoints (``fastreid:FILE``) through the re-implementation used when fast-reid is
not installed (hidden here when it is): the layout is built here, with a reference forward written from
fast-reid's source (fastreid/modeling/backbones/resnet.py, heads/embedding_head.py, layers/pooling.py):
maxpool without padding and ceil_mode, last stride 1, GeM pooling with learned p, 1x1-conv embedding and
BN neck, the bottleneck output returned in eval mode. Where fast-reid is installed, the same checkpoint
loaded through fast-reid itself must give the same features (tests/models/test_fastreid_native.py
covers the rest of that path)."""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision
import yaml

from metricattack.errors import InputError
from metricattack.models import ModelOptions, load_model
from metricattack.models.fastreid_native import import_fastreid, load_fastreid_native

FASTREID = import_fastreid()  # the fastreid package, or None; taken before the fixture below hides it


@pytest.fixture(autouse=True)
def without_fastreid(monkeypatch):
    """Hide an installed fast-reid, so ``fastreid:FILE`` takes the re-implementation."""
    monkeypatch.setitem(sys.modules, "fastreid", None)

PIXEL_MEAN = [0.45 * 255, 0.5 * 255, 0.55 * 255]
PIXEL_STD = [0.2 * 255, 0.25 * 255, 0.3 * 255]


def fastreid_trunk(seed=0):
    """fast-reid's ResNet-18 with last stride 1 and its own maxpool, BN statistics perturbed."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    net.layer4[0].conv1.stride = (1, 1)
    net.layer4[0].downsample[0].stride = (1, 1)
    net.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return net.eval()


def head_state(embedding_dim=16, channels=512, classes=9, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return {
        "heads.pool_layer.p": torch.tensor([3.5]),
        "heads.bottleneck.0.weight": torch.randn(embedding_dim, channels, 1, 1, generator=generator) * 0.05,
        "heads.bottleneck.1.weight": torch.rand(embedding_dim, generator=generator) + 0.5,
        "heads.bottleneck.1.bias": torch.zeros(embedding_dim),  # fast-reid freezes the neck's bias at 0
        "heads.bottleneck.1.running_mean": torch.randn(embedding_dim, generator=generator) * 0.1,
        "heads.bottleneck.1.running_var": torch.rand(embedding_dim, generator=generator) + 0.5,
        "heads.bottleneck.1.num_batches_tracked": torch.tensor(100),
        "heads.weight": torch.randn(classes, embedding_dim, generator=generator),  # the classifier
    }


def reference_features(trunk, head, images):
    """fast-reid's eval forward written out: normalise in [0,255], trunk, GeM, 1x1 conv, BN, [..., 0, 0]."""
    x = (images * 255 - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))))))
    p = head["heads.pool_layer.p"]
    pooled = x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)  # (B, 512)
    embedded = pooled @ head["heads.bottleneck.0.weight"][:, :, 0, 0].T  # (B, 16)
    scale = head["heads.bottleneck.1.weight"] / torch.sqrt(head["heads.bottleneck.1.running_var"] + 1e-5)
    return (embedded - head["heads.bottleneck.1.running_mean"]) * scale + head["heads.bottleneck.1.bias"]


CONFIG = {
    "MODEL": {
        "META_ARCHITECTURE": "Baseline",
        "BACKBONE": {"NAME": "build_resnet_backbone", "DEPTH": "18x", "LAST_STRIDE": 1, "NORM": "BN", "WITH_IBN": False,
                     "FEAT_DIM": 512},  # only fast-reid itself reads FEAT_DIM
        "HEADS": {"NAME": "EmbeddingHead", "POOL_LAYER": "GeneralizedMeanPoolingP", "EMBEDDING_DIM": 16, "WITH_BNNECK": True},
        "PIXEL_MEAN": PIXEL_MEAN,
        "PIXEL_STD": PIXEL_STD,
    },
    "INPUT": {"SIZE_TEST": [64, 32]},
    "TEST": {"METRIC": "cosine"},
}


def write_checkpoint(folder, trunk, head, config=CONFIG, extra=None):
    """fast-reid's checkpointer layout: {"model": state_dict, "optimizer": ..., "iteration": ...} + config.yaml."""
    state = {f"backbone.{k}": v for k, v in trunk.state_dict().items() if not k.startswith("fc.")}
    state.update(head)
    state.update(extra or {})
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "iteration": 999}, folder / "model_final.pth")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "model_final.pth"


def test_fastreid_baseline_gives_fastreids_features(tmp_path):
    trunk, head = fastreid_trunk(), head_state()
    path = write_checkpoint(tmp_path, trunk, head)
    model, meta = load_model(f"fastreid:{path}")
    assert model.spec.input_size == (64, 32) and model.spec.metric == "cosine" and model.spec.normalize
    assert model.spec.mean == pytest.approx((0.45, 0.5, 0.55)) and meta["spec"]["feature_dim"] == 16
    images = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_features(trunk, head, images), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(FASTREID is None, reason="fast-reid is not installed")
def test_fastreid_itself_gives_the_same_features(tmp_path):
    """The re-implementation and fast-reid's own model agree on the same checkpoint."""
    trunk, head = fastreid_trunk(), head_state()
    path = write_checkpoint(tmp_path, trunk, head)
    images = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(5))
    native = load_fastreid_native(FASTREID, path, ModelOptions())
    reimplemented, _ = load_model(f"fastreid:{path}")
    assert native.spec == reimplemented.spec
    with torch.no_grad():
        torch.testing.assert_close(native(images), reimplemented(images), rtol=1e-5, atol=1e-5)


def test_torchvision_maxpool_would_differ(tmp_path):
    """The reference is sensitive to fast-reid's maxpool: torchvision's padded one gives other features."""
    trunk, head = fastreid_trunk(), head_state()
    images = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference_features(trunk, head, images)
        trunk.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        assert not torch.allclose(reference_features(trunk, head, images), expected, rtol=1e-3, atol=1e-4)


def test_fastreid_checkpoint_needs_its_config(tmp_path):
    path = write_checkpoint(tmp_path, fastreid_trunk(), head_state())
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(InputError, match=r"config\.yaml: not found \(expected the config\.yaml fast-reid's training writes"):
        load_model(f"fastreid:{path}")


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("BACKBONE", "WITH_IBN", True, r"MODEL\.BACKBONE\.WITH_IBN is True; only False can be reproduced"),
        ("BACKBONE", "NAME", "build_osnet_backbone", r"MODEL\.BACKBONE\.NAME is 'build_osnet_backbone'"),
        ("HEADS", "POOL_LAYER", "Attention", r"MODEL\.HEADS\.POOL_LAYER is 'Attention' \(expected one of GlobalAvgPool"),
    ],
)
def test_settings_that_cannot_be_reproduced_are_refused(tmp_path, section, key, value, message):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["MODEL"][section][key] = value
    path = write_checkpoint(tmp_path, fastreid_trunk(), head_state(), config)
    with pytest.raises(InputError, match=message):
        load_model(f"fastreid:{path}")


def test_weights_the_config_does_not_explain_are_refused(tmp_path):
    """A non-local block (WITH_NL) left out of the config shows up as unexpected keys."""
    path = write_checkpoint(tmp_path, fastreid_trunk(), head_state(), extra={"backbone.NL_2.0.g.weight": torch.zeros(1)})
    with pytest.raises(InputError, match=r"fast-reid Baseline\): checkpoint does not fit fastreid:.*1 unexpected keys: backbone\.NL_2"):
        load_model(f"fastreid:{path}")


def test_fastreid_checkpoint_as_one_of_our_architectures_points_to_fastreid(tmp_path):
    path = write_checkpoint(tmp_path, fastreid_trunk(), head_state())
    with pytest.raises(InputError, match=r"a fast-reid checkpoint: load it with --model fastreid:"):
        load_model("resnet18", path)
