"""What an attack kind uses of the campaign it runs in: a protocol, so that a kind can be run (and tested)
without a ``Campaign``, and the campaign module need not know the kinds.

A ``Campaign`` is one; so is any object with these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from metricattack.data.base import Sample
    from metricattack.experiment.setting import NamedModel
    from metricattack.experiment.side_images import SideImages
    from metricattack.models.deployment import Deployment
    from metricattack.models.reid import ReIDModel


class AttackContext(Protocol):
    """The images, labels, clean features and options an attack kind reads."""

    query: SideImages
    gallery: SideImages
    train: list[Sample]  # the training split (a universal perturbation learns on it)
    deployment: Deployment  # how the source models are deployed (its identity keys cached work)
    device: torch.device
    seed: int
    batch_size: int
    chunk_size: int  # images per stored chunk: a whole number of batches
    quantize_images: bool  # attacked images are kept as 8-bit images
    progress: bool

    def features(self, model: ReIDModel, images: torch.Tensor) -> torch.Tensor:
        """Features (on the device) of 8-bit or float images, in batches."""

    def clean_features(self, named: NamedModel, flip: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) clean features of a deployed model, computed once."""
