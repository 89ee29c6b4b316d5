"""How visible a perturbation is: L∞, L2, PSNR and SSIM of adversarial images against their originals.

Both images are rounded to 8 bits first, as saved PNGs would be. Over a set of N image pairs:

- perturbation_linf: mean over images of max |x' - x|, in pixels out of 255;
- perturbation_l2: mean over images of ||x' - x||_2 over all channels and pixels, in the same unit
  (the unit of ``--eps`` under ``--norm l2``);
- psnr: 10 log10(1 / MSE) in dB, the MSE over every value of every image (None when nothing changed);
- ssim: mean over images of SSIM (Wang et al. 2004; torchmetrics: Gaussian window 11, sigma 1.5,
  K1 0.01, K2 0.03, data range 1, averaged over the RGB channels; computed in float32, which is 12x
  faster than float64 on a CPU and accurate to about 5e-4); 1 means identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from metricattack.errors import InputError

PERCEPTIBILITY_KEYS = ("perturbation_linf", "perturbation_l2", "psnr", "ssim")


def to_8bit_fraction(images: torch.Tensor) -> torch.Tensor:
    """Images (uint8, or float in [0,1]) as float64 in [0,1] on the 8-bit grid."""
    if images.dtype == torch.uint8:
        return images.double() / 255
    return images.double().mul(255).round().div(255)


def perturbation_sizes(
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], batch_size: int = 64, device: torch.device | None = None
) -> dict:
    """The four perceptibility measures (see the module docstring) over (originals, adversarial) batches (N,C,H,W).

    Every value is None when there is no image."""
    from torchmetrics.functional.image import structural_similarity_index_measure  # slow to import: only where used

    linf = l2 = ssim = squared_error = 0.0
    num_images = num_values = 0
    for originals, adversarial in pairs:
        if originals.shape != adversarial.shape:
            raise InputError(f"original and adversarial images differ in shape: {tuple(originals.shape)} and {tuple(adversarial.shape)}")
        for start in range(0, len(originals), batch_size):
            clean = to_8bit_fraction(originals[start : start + batch_size].to(device))
            changed = to_8bit_fraction(adversarial[start : start + batch_size].to(device))
            delta = (changed - clean).flatten(1)  # (B,CHW)
            linf += delta.abs().amax(dim=1).sum().item() * 255
            l2 += delta.norm(dim=1).sum().item() * 255
            squared_error += delta.square().sum().item()
            ssim += structural_similarity_index_measure(changed.float(), clean.float(), data_range=1.0, reduction="sum").item()
            num_images, num_values = num_images + len(delta), num_values + delta.numel()
    if num_images == 0:
        return dict.fromkeys(PERCEPTIBILITY_KEYS)
    mse = squared_error / num_values
    return {
        "perturbation_linf": linf / num_images,
        "perturbation_l2": l2 / num_images,
        "psnr": 10 * math.log10(1 / mse) if mse > 0 else None,
        "ssim": ssim / num_images,
    }
