"""What a printer and a person impose on a pattern: printable colours, smoothness, and the random
pattern of the same colours and smoothness that an optimised one is compared with.

Non-printability (Sharif et al., CCS 2016, for eyeglass frames), here in its **min form**: the mean
over texels of the distance to the nearest printable colour,

    NPS(T) = 1/|T| * sum_t min_{p in P} ||T_t - p||_2,

rather than Sharif's product prod_p |T_t - p|, whose scale collapses with a palette of many colours.
Total variation, as Sharif's smoothness term: TV(T) = mean_t sqrt(dx_t^2 + dy_t^2 + e), over the
(h-1, w-1) texels that have a right and a lower neighbour.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TV_EPSILON = 1e-8  # inside the square root: a finite gradient where the pattern is flat

# Colours a desktop printer reaches on white fabric: a 4-level grid of the sRGB cube without its
# extremes (no pure black or white, no fully saturated primaries), 64 colours in [0, 1].
PRINT_LEVELS = (0.1, 0.37, 0.63, 0.9)
PRINTABLE = np.array([(r, g, b) for r in PRINT_LEVELS for g in PRINT_LEVELS for b in PRINT_LEVELS], dtype=np.float32)


def non_printability(texture: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Min-form NPS of ``texture`` (3, h, w) over ``palette`` (P, 3): the mean distance to the nearest colour."""
    texels = texture.flatten(1).T  # (h*w, 3)
    return torch.cdist(texels, palette.to(texels)).min(dim=1).values.mean()


def total_variation(texture: torch.Tensor) -> torch.Tensor:
    """Mean isotropic total variation of ``texture`` (3, h, w) (or (N, 3, h, w), one value per texture)."""
    dx = texture[..., :-1, 1:] - texture[..., :-1, :-1]
    dy = texture[..., 1:, :-1] - texture[..., :-1, :-1]
    return torch.sqrt((dx * dx + dy * dy).sum(dim=-3) + TV_EPSILON).mean(dim=(-2, -1))


def snap_to_palette(texture: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Each texel of ``texture`` (3, h, w) replaced by its nearest ``palette`` (P, 3) colour."""
    texels = texture.flatten(1).T
    nearest = torch.cdist(texels, palette.to(texels)).argmin(dim=1)
    return palette.to(texels)[nearest].T.reshape(texture.shape)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, h, w) with replicated edges (``sigma`` in texels; 0: unchanged)."""
    if sigma <= 0:
        return images
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=images.dtype) / sigma) ** 2)
    taps = taps / taps.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    across = F.conv2d(padded, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    padded = F.pad(across, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def match_histograms(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``source`` (3, h, w) with each channel's values replaced, rank for rank, by ``reference``'s sorted values
    of that channel: the same colour values, arranged as ``source`` orders them."""
    flat = source.flatten(1)
    values = reference.flatten(1).sort(dim=1).values
    matched = torch.empty_like(flat)
    matched.scatter_(1, flat.argsort(dim=1), values)
    return matched.reshape(source.shape)


def random_pattern(reference: torch.Tensor, generator: torch.Generator, iterations: int = 30) -> torch.Tensor:
    """A random pattern with ``reference``'s (3, h, w) colour values (per-channel histograms) and its total
    variation: white noise, low-pass filtered with the Gaussian whose width gives, after histogram matching,
    the reference's TV (bisection over the width; TV falls as it grows)."""
    noise = torch.rand(reference.shape, generator=generator, dtype=torch.float64)
    target = float(total_variation(reference.double()))

    def pattern(sigma: float) -> torch.Tensor:
        return match_histograms(gaussian_blur(noise[None], sigma)[0], reference.double())

    low, high = 0.0, float(max(reference.shape[1:]))
    if float(total_variation(pattern(low))) <= target:
        return pattern(low).to(reference.dtype)
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if float(total_variation(pattern(middle))) > target else (low, middle)
    return pattern(high).to(reference.dtype)
