"""--amp and channels-last: off is the model itself; on stays within stated tolerances of float32 for features,
input gradients and an attack's mAP; the wrapper really autocasts; it composes with flip averaging.

Tolerances (measured on the tiny trained model, 64x32 input, 40 gallery images, torch 2.14 CPU):
bf16 features: worst row cosine 0.99989, relative L2 error 0.015; fp16: 0.999998 and 0.0019.
Gradient signs where |g| is above its median agree on 99.8 % (bf16) and 99.99 % (fp16) of the entries.
I-FGSM (eps 4/255, 5 steps) on the gallery: mAP 0.1125 in float32, 0.1117 under bf16, 0.1115 under fp16.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metricattack.models.precision as precision
from metricattack.attacks import MetricAttack, NonTargetedMetricLoss, build_step_rule
from metricattack.errors import InputError
from metricattack.evaluation import evaluate_features
from metricattack.evaluation.pipeline import FlipAverage, with_flip
from metricattack.models.features import check_finite, features_of
from metricattack.data.images import read_images
from metricattack.models.precision import Precision, autocast_problem, with_precision

# amp -> (min cosine per row, max relative L2 error per row, min sign agreement of the larger gradients)
TOLERANCE = {"bf16": (0.999, 0.05, 0.95), "fp16": (0.9999, 0.01, 0.99)}
MAP_TOLERANCE = 0.02  # absolute, on an attacked mAP of about 0.11 (clean 0.54)


@pytest.fixture()
def model(tiny_model):
    """A private copy: channels-last changes the weights' layout in place."""
    return copy.deepcopy(tiny_model).eval()


@pytest.fixture(scope="module")
def problem(tiny_data):
    """Query images, gallery images of the query identities, their labels."""
    query, gallery = (read_images(samples).float() / 255 for samples in (tiny_data.query, tiny_data.gallery))
    labels = [torch.tensor([getattr(s, key) for s in samples]) for key in ("pid", "camid") for samples in (tiny_data.query, tiny_data.gallery)]
    query_pids, gallery_pids, query_camids, gallery_camids = labels
    keep = torch.isin(gallery_pids, query_pids)
    return query, gallery[keep], (query_pids, gallery_pids[keep], query_camids, gallery_camids[keep])


def input_gradient(model: nn.Module, images: torch.Tensor, references: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """d/dx of the default non-targeted metric loss, as an attack takes it."""
    images = images.clone().requires_grad_(True)
    loss = NonTargetedMetricLoss("sqeuclidean", normalize=True)(model(images), references, own)
    (grad,) = torch.autograd.grad(loss.sum(), images)
    return grad


def record_first_conv(model: nn.Module) -> list:
    """(input channels-last?, output dtype) of the model's first convolution, per call."""
    seen = []
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].is_contiguous(memory_format=torch.channels_last), output.dtype)))
    return seen


def test_off_is_the_model_itself(model):
    assert with_precision(model) is model and with_precision(model, "off", False) is model
    assert all(p.is_contiguous() for p in model.parameters())


def test_channels_last_alone_matches_float32(model, problem):
    query, gallery, (query_pids, gallery_pids, _, _) = problem
    with torch.no_grad():
        expected, references = model(gallery), model(query)
    own = gallery_pids[:, None] == query_pids[None, :]
    expected_grad = input_gradient(model, gallery, references, own)
    wrapped = with_precision(model, channels_last=True)
    assert isinstance(wrapped, Precision) and wrapped.model is model
    assert any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters())
    seen = record_first_conv(model)
    with torch.no_grad():
        features = wrapped(gallery)
    assert seen == [(True, torch.float32)]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    grad = input_gradient(wrapped, gallery, references, own)
    assert grad.dtype == torch.float32 and grad.is_contiguous()  # the input's layout, not channels-last
    assert ((grad - expected_grad).norm() / expected_grad.norm()).item() < 1e-5
    assert with_precision(wrapped, "off") is model and all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_autocast_features_and_gradients_stay_close_to_float32(model, problem, amp, channels_last):
    query, gallery, (query_pids, gallery_pids, _, _) = problem
    with torch.no_grad():
        expected, references = model(gallery), model(query)
    own = gallery_pids[:, None] == query_pids[None, :]
    expected_grad = input_gradient(model, gallery, references, own)
    wrapped = with_precision(model, amp, channels_last)
    seen = record_first_conv(model)
    with torch.no_grad():
        features = wrapped(gallery)
    assert seen == [(channels_last, precision.AMP_DTYPES[amp])]  # autocast really ran the convolution in amp
    assert features.dtype == torch.float32 and not torch.equal(features, expected)
    min_cosine, max_relative, min_agreement = TOLERANCE[amp]
    assert F.cosine_similarity(features, expected).min().item() > min_cosine
    assert ((features - expected).norm(dim=1) / expected.norm(dim=1)).max().item() < max_relative
    grad = input_gradient(wrapped, gallery, references, own)
    assert grad.dtype == torch.float32 and grad.is_contiguous()
    larger = expected_grad.abs() > expected_grad.abs().median()
    assert (grad.sign()[larger] == expected_grad.sign()[larger]).float().mean().item() > min_agreement


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_an_attack_under_autocast_does_the_same_damage(model, problem, amp):
    query, gallery, labels = problem
    query_pids, gallery_pids = labels[:2]
    own = gallery_pids[:, None] == query_pids[None, :]

    def attacked_map(victim: nn.Module) -> float:
        with torch.no_grad():
            references = victim(query)
        attack = MetricAttack([victim], [NonTargetedMetricLoss("sqeuclidean", normalize=True)], build_step_rule("ifgsm", 4 / 255, steps=5))
        adversarial = attack.perturb(gallery, [references], own)
        with torch.no_grad():
            return evaluate_features(references, victim(adversarial), *labels, metric="euclidean", normalize=True).mAP

    with torch.no_grad():
        clean = evaluate_features(model(query), model(gallery), *labels, metric="euclidean", normalize=True).mAP
    plain = attacked_map(model)
    wrapped = with_precision(model, amp)
    mixed = attacked_map(wrapped)
    assert plain < clean - 0.2  # the attack does real damage, so the comparison means something
    assert abs(mixed - plain) < MAP_TOLERANCE
    assert not wrapped.training and not model.training  # the wrapper starts in the model's mode, and the attack restores it
    assert all(p.grad is None for p in model.parameters())


def test_composes_with_flip_averaging_in_either_order(model):
    images = torch.rand(4, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    outer = with_flip(with_precision(model, "bf16"), True)
    inner = with_precision(with_flip(model, True).eval(), "bf16")
    assert not inner.training and not inner.model.training
    for wrapped in (outer, inner):
        assert isinstance(wrapped, FlipAverage) and isinstance(wrapped.model, Precision) and wrapped.model.model is model
        assert wrapped.spec is model.spec and wrapped.feature_dim == model.feature_dim
    bare = Precision(model, "bf16")
    with torch.no_grad():
        torch.testing.assert_close(inner(images), (bare(images) + bare(images.flip(-1))) / 2)
    assert with_flip(inner, False).model is model and with_precision(inner, "off").model is model


def test_wrapping_again_replaces_the_settings(model):
    twice = with_precision(with_precision(model, "bf16", True), "fp16")
    assert isinstance(twice, Precision) and twice.model is model and (twice.amp, twice.channels_last) == ("fp16", False)
    assert all(p.is_contiguous() for p in model.parameters())
    assert twice.spec is model.spec and "amp=fp16" in repr(twice)


def test_feature_extraction_under_inference_mode(model):
    images = torch.rand(4, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    wrapped = with_precision(model, "bf16", channels_last=True)
    with torch.no_grad():
        expected = wrapped(images)
    torch.testing.assert_close(features_of(wrapped, images), expected, atol=0, rtol=0)


def test_train_mode_outputs_are_float32(model):
    wrapped = with_precision(model.train(), "bf16")
    logits, features = wrapped(torch.rand(4, 3, 64, 32))
    assert wrapped.training and logits.dtype == features.dtype == torch.float32
    assert logits.shape == (4, model.spec.num_classes)


def test_fp16_overflow_is_caught_by_the_finite_check():
    huge = nn.Linear(2, 2)  # 1e5 fits float32 but not float16 (max 65504)
    with torch.no_grad():
        huge.weight.copy_(torch.eye(2) * 1e5)
        huge.bias.zero_()
    inputs = torch.ones(3, 2)
    assert torch.isfinite(huge(inputs)).all()
    features = with_precision(huge, "fp16")(inputs)
    assert features.dtype == torch.float32 and torch.isinf(features).all()
    with pytest.raises(InputError, match="not finite"):
        check_finite(features, "huge", "query images")


@pytest.mark.parametrize("amp", ["fp32", "", None, ["bf16"]])
def test_unknown_precision_is_an_input_error(model, amp):
    with pytest.raises(InputError, match="--amp: unknown precision"):
        with_precision(model, amp, channels_last=True)
    assert all(p.is_contiguous() for p in model.parameters())  # refused before the weights were touched


def test_autocast_that_torch_would_turn_off_is_an_input_error(model, monkeypatch):
    assert autocast_problem("cpu", torch.bfloat16) is None and autocast_problem("cpu", torch.float16) is None
    assert "not supported" in autocast_problem("cpu", torch.float64)  # torch only warns and runs in float32
    monkeypatch.setitem(precision.AMP_DTYPES, "fp64", torch.float64)
    with pytest.raises(InputError, match="--amp fp64: autocast does not work on cpu"):
        with_precision(model, "fp64")(torch.rand(2, 3, 64, 32))
