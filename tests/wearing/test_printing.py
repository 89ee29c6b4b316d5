"""Printability, smoothness and the matched random pattern, against hand-worked values."""

from __future__ import annotations

import math

import torch

from metricattack.wearing.printing import (
    PRINTABLE,
    gaussian_blur,
    match_histograms,
    non_printability,
    random_pattern,
    snap_to_palette,
    total_variation,
)


def test_non_printability_is_the_mean_distance_to_the_nearest_colour():
    palette = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    texture = torch.tensor([[0.0, 0.1], [0.0, 0.9]]).expand(3, 2, 2).contiguous()  # greys 0, 0.1, 0, 0.9
    expected = (0 + 0.1 * math.sqrt(3) + 0 + 0.1 * math.sqrt(3)) / 4
    assert math.isclose(float(non_printability(texture, palette)), expected, rel_tol=1e-5)
    assert float(non_printability(snap_to_palette(texture, palette), palette)) == 0


def test_total_variation_by_hand():
    texture = torch.zeros(3, 3, 3)
    texture[0, 1, 1] = 1.0  # one bright red texel
    # texels with a right and a lower neighbour: (0,0), (0,1), (1,0), (1,1)
    values = [0.0, 1.0, 1.0, math.sqrt(2.0)]  # (0,1): dy = 1; (1,0): dx = 1; (1,1): dx = dy = -1
    expected = sum(math.sqrt(v * v + 1e-8) for v in values) / 4
    assert math.isclose(float(total_variation(texture)), expected, rel_tol=1e-4)


def test_blur_keeps_a_flat_image_and_the_mean():
    flat = torch.full((1, 3, 5, 7), 0.3, dtype=torch.float64)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat)
    spike = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    spike[0, 0, 10, 10] = 1
    assert math.isclose(float(gaussian_blur(spike, 1.0).sum()), 1.0, rel_tol=1e-9)


def test_match_histograms_keeps_the_reference_values_in_the_source_order():
    source = torch.tensor([[[3.0, 1.0], [2.0, 0.0]]])
    reference = torch.tensor([[[0.9, 0.1], [0.5, 0.2]]])
    assert torch.equal(match_histograms(source, reference), torch.tensor([[[0.9, 0.2], [0.5, 0.1]]]))


def test_random_pattern_has_the_colours_and_smoothness_of_the_reference():
    generator = torch.Generator().manual_seed(0)
    reference = gaussian_blur(torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64), 1.0)[0].float()
    pattern = random_pattern(reference, torch.Generator().manual_seed(1))
    assert torch.equal(pattern.flatten(1).sort(dim=1).values, reference.flatten(1).sort(dim=1).values)
    assert math.isclose(float(total_variation(pattern)), float(total_variation(reference)), rel_tol=0.05)
    assert not torch.equal(pattern, reference)
    again = random_pattern(reference, torch.Generator().manual_seed(1))
    assert torch.equal(pattern, again)


def test_the_palette_is_printable_colours_in_range():
    assert PRINTABLE.shape == (64, 3) and PRINTABLE.min() > 0 and PRINTABLE.max() < 1
