"""Model registry: every model builds, returns features of the right size, and trains end to end."""

import pytest
import torch

from metricattack.errors import InputError
from metricattack.models import build_model, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_model_gives_features_and_gradients(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, input_size=(64, 32))
    images = torch.rand(2, 3, 48, 24)  # stored size differs from the input size: resize happens in the graph
    model.train()
    logits, embedded = model(images)
    assert logits.shape == (2, 5)
    (logits.sum() + embedded.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    model.eval()
    features = model(images)
    assert features.shape == (2, model.feature_dim)
    assert torch.isfinite(features).all()


def test_gradient_reaches_the_stored_resolution():
    model = build_model("compact", input_size=(64, 32)).eval()
    images = torch.rand(2, 3, 128, 64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(images).sum(), images)
    assert grad.shape == images.shape and grad.abs().sum() > 0


def test_preprocess_normalises_with_the_spec_mean_and_std():
    model = build_model("compact", input_size=(4, 2), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = torch.full((1, 3, 4, 2), 0.75)
    assert torch.allclose(model.preprocess(images), torch.ones(1, 3, 4, 2))


def test_embedding_and_bnneck_options_shape_the_feature():
    model = build_model("compact", embedding_dim=32, input_size=(64, 32)).eval()
    assert model(torch.rand(3, 3, 64, 32)).shape == (3, 32)
    assert not model.neck.bias.requires_grad  # BNNeck keeps its shift fixed


def test_unknown_model_lists_valid_names():
    with pytest.raises(InputError, match="unknown model 'resnet1000'.*compact"):
        build_model("resnet1000")


def test_last_stride_one_doubles_the_final_map():
    images = torch.rand(1, 3, 64, 32)
    strided = build_model("resnet18", last_stride=2).backbone
    unstrided = build_model("resnet18", last_stride=1).backbone
    assert unstrided(images).shape[-2:] == tuple(2 * s for s in strided(images).shape[-2:])
