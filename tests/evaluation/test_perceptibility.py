"""Perceptibility measures on hand-worked images."""

from __future__ import annotations

import math

import pytest
import torch

from metricattack.evaluation.perceptibility import perturbation_sizes


def test_linf_l2_psnr_by_hand():
    originals = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    adversarial = originals.double() / 255
    adversarial[0, 1, 4, 5] += 3 / 255  # one value up by 3
    adversarial[1, 0, :2, :2] += 2.4 / 255  # four values up by 2.4, rounded to 2 on the 8-bit grid
    sizes = perturbation_sizes([(originals, adversarial.float())])
    assert sizes["perturbation_linf"] == pytest.approx((3 + 2) / 2)
    assert sizes["perturbation_l2"] == pytest.approx((3 + math.sqrt(4 * 2**2)) / 2)
    mse = (3**2 + 4 * 2**2) / 255**2 / (2 * 3 * 16 * 16)
    assert sizes["psnr"] == pytest.approx(10 * math.log10(1 / mse))
    assert 0 < sizes["ssim"] < 1


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 100 / 255, 110 / 255
    originals = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    adversarial = torch.full((1, 3, 16, 16), b)
    c1 = 0.01**2  # (K1 x data range)^2; no variance, so the contrast-structure term is C2 / C2 = 1
    assert perturbation_sizes([(originals, adversarial)])["ssim"] == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), abs=5e-4)  # SSIM runs in float32


def test_pairs_of_several_batches_and_sides_are_pooled():
    generator = torch.Generator().manual_seed(0)
    originals = torch.randint(0, 256, (5, 3, 16, 12), generator=generator, dtype=torch.uint8)
    adversarial = (originals.float() + torch.randint(-4, 5, originals.shape, generator=generator)).clamp(0, 255) / 255
    whole = perturbation_sizes([(originals, adversarial)], batch_size=64)
    split = perturbation_sizes([(originals[:2], adversarial[:2]), (originals[2:], adversarial[2:])], batch_size=2)
    assert split == pytest.approx(whole)


def test_no_change_and_no_images():
    originals = torch.full((1, 3, 16, 16), 7, dtype=torch.uint8)
    same = perturbation_sizes([(originals, originals.float() / 255 + 0.4 / 255)])  # rounds back to the original
    assert same == {"perturbation_linf": 0.0, "perturbation_l2": 0.0, "psnr": None, "ssim": pytest.approx(1.0)}
    assert perturbation_sizes([]) == dict.fromkeys(("perturbation_linf", "perturbation_l2", "psnr", "ssim"))
