"""How a model is deployed: the device, the precision, the memory format and flip averaging, as one object.

The same weights deployed two ways give different features (and so different attacks): everything that
records or caches what a deployment made keys it by ``Deployment.identity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from metricattack.evaluation.pipeline import with_flip
from metricattack.models.precision import amp_dtype, with_precision


@dataclass(frozen=True)
class Deployment:
    """A model's deployment: ``device``, mixed precision ``amp`` ("off", "bf16", "fp16"), channels-last memory
    format, and flip averaging (the deployed pipeline's: an attack goes through it)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: str = "off"
    channels_last: bool = False
    flip: bool = False

    def __post_init__(self) -> None:
        amp_dtype(self.amp)  # an unknown precision is the one-line InputError

    @property
    def identity(self) -> dict:
        """What of the deployment changes the numbers beyond float rounding: the precision and flip averaging
        (the device and the memory format only change rounding, as a resume on another device does)."""
        return {"flip": self.flip, "amp": self.amp}

    def deploy(self, model: nn.Module) -> nn.Module:
        """``model`` as deployed: with its precision and memory format, inside flip averaging or not, on the
        device, in eval mode (idempotent: deploying a deployed model changes nothing)."""
        deployed = with_flip(with_precision(model, self.amp, self.channels_last), self.flip)
        return deployed.to(self.device).eval()
