"""Re-ID training: identity sampler, losses, augmentation, schedule and the loop."""

from metricattack.training.augment import TrainAugment, default_pad, random_erase, random_flip, random_pad_crop
from metricattack.training.losses import LOSS_KINDS, CrossEntropyLabelSmooth, ReIDLoss, TripletLoss
from metricattack.training.samplers import RandomIdentitySampler, relabel
from metricattack.training.schedule import SCHEDULES, build_scheduler, lr_factor

__all__ = [
    "LOSS_KINDS",
    "SCHEDULES",
    "CrossEntropyLabelSmooth",
    "RandomIdentitySampler",
    "ReIDLoss",
    "TrainAugment",
    "TripletLoss",
    "build_scheduler",
    "default_pad",
    "lr_factor",
    "random_erase",
    "random_flip",
    "random_pad_crop",
    "relabel",
]
