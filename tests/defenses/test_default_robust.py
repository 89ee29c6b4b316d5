"""The bundled robust model: loadable by name everywhere, same architecture as the default, its recipe stored."""

from __future__ import annotations

import shlex

import torch

from metricattack.experiment.inputs import model_from_reference
from metricattack.models import BUNDLED, load_model
from metricattack.models.checkpoints import training_recipe


def test_default_robust_loads_by_name_with_the_recipe_that_made_it():
    robust, meta = load_model("default-robust")
    default, default_meta = load_model()
    assert BUNDLED["default-robust"].is_file() and BUNDLED["default-robust"].with_suffix(".json").is_file()
    assert meta["spec"] == {**default_meta["spec"], "purifier": None}  # the same architecture as default
    recipe = training_recipe(meta)  # replayable from scratch: default's own command, then each fine-tuning
    assert recipe[0] == default_meta["train_command"] and recipe[1].startswith("metricattack train --weights default ")
    for earlier, later in zip(recipe[1:], recipe[2:]):  # each stage starts from what the one before wrote
        words = shlex.split(earlier)
        assert f" --weights {words[words.index('--out') + 1]}/model.safetensors " in later
    assert f"--defense {meta['defense']['name']}" in meta["train_command"] and meta["defense"]["eps"] > 0
    named = model_from_reference("default-robust")
    images = torch.rand(2, 3, 128, 64)
    with torch.no_grad():
        assert named.name == "default-robust" and torch.equal(named.model(images), robust(images))
        assert not torch.allclose(robust(images), default(images))  # really other weights
