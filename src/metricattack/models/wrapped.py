"""Any network that maps normalised images to features, wrapped with our preprocessing and a spec.

torchreid models, a user's own module, TorchScript files and fast-reid checkpoints all become a
``WrappedModel``: images in [0,1] at any size -> resize + (x - mean) / std -> network -> features
(B, D). A probe at load time checks that the network accepts such images and returns (B, D), so a
model that does not fit fails with one line before it is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from metricattack.errors import InputError, first_line, is_out_of_memory
from metricattack.models.options import ModelOptions
from metricattack.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess


@dataclass(frozen=True)
class ExternalSpec:
    """What is known about a network built outside our registry (recorded in results.json)."""

    arch: str  # where it came from: torchreid:osnet_x1_0, python:pkg.mod:make, torchscript:net.pt, ...
    input_size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    metric: str = "euclidean"
    normalize: bool = False
    feature_dim: int | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


class WrappedModel(nn.Module):
    """images in [0,1] (B,3,h,w) -> features (B,D): our ``Preprocess`` then the wrapped network."""

    def __init__(self, network: nn.Module, spec: ExternalSpec) -> None:
        super().__init__()
        self.spec = spec
        self.preprocess = Preprocess(spec.input_size, spec.mean, spec.std)
        self.network = network
        self.feature_dim = spec.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(images))


def wrap_network(network: nn.Module, arch: str, options: ModelOptions, **defaults) -> WrappedModel:
    """Wrap ``network`` with the source's ``defaults`` overridden by the user's ``options``, then probe it.

    The probe runs batches of 2 and 1 random images at the input size (eval mode, no gradient) and
    refuses, in one line naming the model and the shapes, a network that raises on them or does not
    return one feature row per image.
    """
    spec = ExternalSpec(arch=arch, **{**defaults, **options.spec_values()})
    model = WrappedModel(network, spec).eval()
    height, width = spec.input_size
    generator = torch.Generator().manual_seed(0)
    for batch in (2, 1):
        images = torch.rand(batch, 3, height, width, generator=generator)
        shape = tuple(images.shape)
        try:
            with torch.no_grad():
                features = model(images)
        except Exception as exc:  # the network is foreign code: whatever it raises means it rejects the images
            if is_out_of_memory(exc):  # ... unless the images are too large to fit (the CLI names the options to lower)
                raise
            raise InputError(
                f"model {arch} does not accept images of shape {shape} (after resizing to its --input-size "
                f"and normalising): {first_line(exc, with_type=True)}"
            ) from None
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != batch:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise InputError(f"model {arch} maps images of shape {shape} to {got}; expected features of shape ({batch}, D)")
    model.spec = replace(spec, feature_dim=int(features.shape[1]))
    model.feature_dim = model.spec.feature_dim
    return model
