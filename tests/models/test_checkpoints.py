"""Our checkpoint format and the adapters for torchreid and the paper's code."""

import json

import pytest
import torch
from safetensors.torch import save_file

from metricattack.errors import InputError
from metricattack.models import build_model, load_checkpoint, load_foreign, load_model, save_checkpoint
from metricattack.models.foreign import read_state_dict


def trained_like(model):
    """Give every saved tensor non-default values so a bad mapping cannot pass by chance."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return model.eval()


def features(model, seed=0):
    images = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(images)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = trained_like(build_model("compact", num_classes=7, embedding_dim=16, input_size=(64, 32)))
    save_checkpoint(tmp_path / "m", model, dataset="synthetic", clean_metrics={"mAP": 0.5})
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert meta["dataset"] == "synthetic" and meta["clean_metrics"] == {"mAP": 0.5}
    assert meta["feature_dim"] == 16 and meta["spec"]["input_size"] == [64, 32]
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert torch.equal(features(model), features(loaded))


def test_load_model_accepts_the_weights_file_or_the_json(tmp_path):
    model = trained_like(build_model("compact", input_size=(64, 32)))
    save_checkpoint(tmp_path / "m", model)
    for name in ("m.safetensors", "m.json"):
        loaded, _ = load_model(None, tmp_path / name)
        assert torch.equal(features(model), features(loaded))
    with pytest.raises(InputError, match="does not match"):
        load_model("resnet18", tmp_path / "m.safetensors")


def test_missing_metadata_and_bad_json_are_one_line_errors(tmp_path):
    model = build_model("compact")
    save_checkpoint(tmp_path / "m", model)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(InputError, match=r"m\.json: not valid \(.*expected the checkpoint's JSON metadata"):
        load_checkpoint(tmp_path / "m.safetensors")
    (tmp_path / "m.json").unlink()
    with pytest.raises(InputError, match=r"m\.json: not found \(expected the checkpoint's JSON metadata"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_mismatched_weights_list_missing_and_unexpected_keys(tmp_path):
    model = build_model("compact")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("neck.")}
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "m.safetensors"))
    meta = {"format_version": 1, "spec": model.spec.to_dict()}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"does not fit compact: 5 missing keys: neck\..*; 1 unexpected keys: extra.weight") as info:
        load_checkpoint(tmp_path / "m")
    assert "\n" not in str(info.value)


def torchreid_state(model):
    """A torchreid-style dict: trunk at the root, classifier, DataParallel prefix, extra entries."""
    state = {k.removeprefix("backbone."): v for k, v in model.state_dict().items()}
    state["classifier.weight"] = torch.randn(11, model.feature_dim)
    state["classifier.bias"] = torch.randn(11)
    return {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 60, "rank1": 0.9}


def test_torchreid_checkpoint_loads(tmp_path):
    source = trained_like(build_model("resnet18", bnneck=False, last_stride=2, normalize=False))
    torch.save(torchreid_state(source), tmp_path / "model.pth.tar-60")
    loaded = load_foreign(tmp_path / "model.pth.tar-60", "resnet18")
    assert not loaded.spec.bnneck and loaded.spec.last_stride == 2
    assert torch.equal(features(source), features(loaded))


def test_torchreid_fc512_checkpoint_is_refused_for_the_plain_architecture(tmp_path):
    """resnet50_fc512 differs from resnet50 by fc layers *and* last stride 1: same keys would load silently wrong."""
    source = trained_like(build_model("resnet18", embedding_dim=32, activation="relu", last_stride=1, normalize=False))
    state = {}
    for key, value in source.state_dict().items():
        key = key.removeprefix("backbone.").replace("embedding.", "fc.0.").replace("neck.", "fc.1.")
        state[key] = value
    torch.save({"state_dict": state}, tmp_path / "fc512.pth")
    with pytest.raises(InputError, match=r"fc512\.pth: has fc layers, which torchreid's resnet18 does not .*--model torchreid:NAME"):
        load_foreign(tmp_path / "fc512.pth", "resnet18")


def test_paper_ft_net_state_dict_loads(tmp_path):
    """Bai et al.'s ft_net: torchvision trunk under model., BN at model.fc.0, classifier fc0."""
    source = trained_like(build_model("resnet50", last_stride=2, input_size=(64, 32)))
    state = {}
    for key, value in source.state_dict().items():
        state[key.replace("backbone.", "model.").replace("neck.", "model.fc.0.")] = value
    state["fc0.weight"], state["fc0.bias"] = torch.randn(751, 2048), torch.randn(751)
    torch.save(state, tmp_path / "soft_resnet_50.pth")
    loaded = load_foreign(tmp_path / "soft_resnet_50.pth", "resnet50", input_size=(64, 32))
    assert torch.equal(features(source), features(loaded))


def test_paper_ft_net_dense_state_dict_loads(tmp_path):
    """ft_net_dense: densenet features under model.features (no final ReLU), BN at model.bn.0."""
    source = trained_like(build_model("densenet121", last_stride=2, final_relu=False, input_size=(64, 32)))
    state = {}
    for key, value in source.state_dict().items():
        state[key.replace("backbone.", "model.").replace("neck.", "model.bn.0.")] = value
    state["model.classifier.weight"], state["model.classifier.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    state["fc0.weight"], state["fc0.bias"] = torch.randn(751, 1024), torch.randn(751)
    torch.save(state, tmp_path / "soft_densenet_121.pth")
    loaded = load_foreign(tmp_path / "soft_densenet_121.pth", "densenet121", input_size=(64, 32))
    assert not loaded.spec.final_relu
    assert torch.equal(features(source), features(loaded))


def test_classblock_state_dict_loads(tmp_path):
    """layumi-style ft_net: trunk under model., ClassBlock (Linear, BN) and classifier under classifier."""
    source = trained_like(build_model("resnet18", embedding_dim=64, last_stride=2, input_size=(64, 32)))
    state = {}
    for key, value in source.state_dict().items():
        key = key.replace("backbone.", "model.").replace("embedding.", "classifier.add_block.0.")
        state[key.replace("neck.", "classifier.add_block.1.")] = value
    state["classifier.classifier.0.weight"] = torch.randn(751, 64)
    state["model.fc.weight"] = torch.randn(1000, 512)
    torch.save(state, tmp_path / "net_last.pth")
    loaded = load_foreign(tmp_path / "net_last.pth", "resnet18", input_size=(64, 32))
    assert loaded.spec.embedding_dim == 64
    assert torch.equal(features(source), features(loaded))


def test_foreign_checkpoint_for_the_wrong_architecture_fails_cleanly(tmp_path):
    source = build_model("resnet18", bnneck=False)
    torch.save(torchreid_state(source), tmp_path / "r18.pth")
    with pytest.raises(InputError, match=r"r18\.pth \(read as torchreid format\): checkpoint does not fit resnet50: .*missing keys"):
        load_foreign(tmp_path / "r18.pth", "resnet50")


class NotAWeight:
    pass


def test_pickle_needing_more_than_weights_is_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": NotAWeight()}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match=r"evil\.pth: refused: this file needs more than weights"):
        read_state_dict(tmp_path / "evil.pth")


def test_foreign_weights_need_an_architecture(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(InputError, match="needs --model"):
        load_model(None, tmp_path / "x.pth")
