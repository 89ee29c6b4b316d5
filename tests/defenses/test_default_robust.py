"""The bundled robust model: loadable by name everywhere, same architecture as the default, its recipe stored."""

from __future__ import annotations

import torch

from metricattack.inputs import model_from_reference
from metricattack.models import BUNDLED, load_model


def test_default_robust_loads_by_name_with_its_training_command():
    robust, meta = load_model("default-robust")
    default, default_meta = load_model()
    assert BUNDLED["default-robust"].is_file() and BUNDLED["default-robust"].with_suffix(".json").is_file()
    assert meta["spec"] == {**default_meta["spec"], "purifier": None}  # the same architecture as default
    assert meta["train_command"].startswith("metricattack train --weights default ")
    assert f"--defense {meta['defense']['name']}" in meta["train_command"] and meta["defense"]["eps"] > 0
    named = model_from_reference("default-robust")
    images = torch.rand(2, 3, 128, 64)
    with torch.no_grad():
        assert named.name == "default-robust" and torch.equal(named.model(images), robust(images))
        assert not torch.allclose(robust(images), default(images))  # really other weights
