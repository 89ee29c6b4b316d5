"""Feature extraction: batching, flip averaging, normalisation, mode; device choice."""

from __future__ import annotations

import pytest
import torch

from metricattack.errors import InputError
from metricattack.models.features import extract_features
from metricattack.system.runtime import choose_device


def test_features_do_not_depend_on_batching_and_restore_the_mode(tiny_data, tiny_model):
    tiny_model.train()
    try:
        whole = extract_features(tiny_model, tiny_data.query, torch.device("cpu"), batch_size=64, progress=False)
        pieces = extract_features(tiny_model, tiny_data.query, torch.device("cpu"), batch_size=3, progress=False)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    assert torch.allclose(whole.features, pieces.features, atol=1e-5)
    assert whole.pids.tolist() == [s.pid for s in tiny_data.query]
    assert whole.camids.tolist() == [s.camid for s in tiny_data.query]


def test_flip_averages_the_image_and_its_mirror_and_normalize_gives_unit_rows(tiny_data, tiny_model):
    from metricattack.data.base import read_image

    samples = tiny_data.gallery[:4]
    flipped = extract_features(tiny_model, samples, torch.device("cpu"), flip=True, normalize=True, progress=False)
    images = torch.stack([read_image(s.path) for s in samples])
    with torch.no_grad():
        expected = torch.nn.functional.normalize((tiny_model(images) + tiny_model(images.flip(-1))) / 2, dim=1)
    assert torch.allclose(flipped.features, expected, atol=1e-5)
    assert torch.allclose(flipped.features.norm(dim=1), torch.ones(4))


def test_device_choice():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(None).type in ("cpu", "cuda")
    with pytest.raises(InputError, match="--device: unknown device 'gpu0'"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            choose_device("cuda")
