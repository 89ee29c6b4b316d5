"""Redrawing renders' prints in torch, differentiable in the print: what a wearable pattern is optimised through.

For each render (a ``PrintScene`` of ``render.render_scene``) and a print T (3, h, w) in [0, 1]:

    before = rest + downsample(shading * 255 * T(grid))          (grid_sample, the supersampled pixels)
    image  = noise_step(optics(quantise(colour(before))))         (the numpy renderer's camera, step by step)

colour: per-channel gain then saturation around the grey; quantise: clip to 0-255 and round, as the
renderer's 8-bit image; optics: the camera's bilinear resolution round trip (PIL's coefficients at its
22-bit fixed point, horizontal then vertical, rounded after each pass) and its Gaussian blur (PIL's
three box passes per axis, rounded after each pass); noise_step: the render's own noise, clip, round.
Rounding is straight-through (rounded forward, identity backward), so the forward pass gives the
renderer's bytes up to float error at a rounding boundary and the gradient is that of the unrounded chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from metricattack.data.synthetic.texture import PrintScene

PRECISION_BITS = 22  # PIL's fixed point for 8-bit resampling (32 - 8 - 2)
Optics = tuple[tuple[int, int] | None, float]  # (resize (w, h) or None, blur radius)


@dataclass(frozen=True)
class SceneBatch:
    """Renders stacked for ``composite`` (tensors on one device, one dtype; shapes in comments)."""

    grid: torch.Tensor  # (N, H*s, W*s, 2)
    shading: torch.Tensor  # (N, 1, H*s, W*s)
    rest: torch.Tensor  # (N, 3, H, W), 0-255
    gain: torch.Tensor  # (N, 3)
    saturation: torch.Tensor  # (N,)
    noise: torch.Tensor  # (N, 3, H, W), 0-255
    optics: tuple[Optics, ...]  # per render
    supersample: int


def stack_scenes(
    scenes: Sequence[PrintScene], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> SceneBatch:
    """Stack renders of one image size into a SceneBatch (float64 by default: the camera's fixed-point
    sums are then exact enough to round as PIL does)."""
    if not scenes:
        raise ValueError("stack_scenes: no scenes")

    def stacked(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrays), dtype=dtype, device=device)

    return SceneBatch(
        grid=stacked([s.grid for s in scenes]),
        shading=stacked([s.shading for s in scenes])[:, None],
        rest=stacked([s.rest for s in scenes]).permute(0, 3, 1, 2).contiguous(),
        gain=stacked([s.gain for s in scenes]),
        saturation=stacked([np.float64(s.saturation) for s in scenes]),
        noise=stacked([s.noise for s in scenes]).permute(0, 3, 1, 2).contiguous(),
        optics=tuple((s.resize, s.blur) for s in scenes),
        supersample=scenes[0].supersample,
    )


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Clip to 0-255 and round half up, as ``np.uint8(np.clip(x + 0.5, 0, 255))``; straight-through gradient."""
    x = x.clamp(0, 255)
    return x + (torch.floor(x + 0.5) - x).detach()


def composite(texture: torch.Tensor, batch: SceneBatch) -> torch.Tensor:
    """The renders of ``batch`` with the print ``texture`` ((3, h, w) shared, or (N, 3, h, w) one per
    render, in [0, 1]): (N, 3, H, W) in [0, 1], in the texture's dtype."""
    n = batch.grid.shape[0]
    prints = texture.to(batch.grid) if texture.dim() == 4 else texture.to(batch.grid).expand(n, -1, -1, -1)
    sampled = F.grid_sample(prints, batch.grid, mode="bilinear", padding_mode="border", align_corners=False)
    before = batch.rest + F.avg_pool2d(batch.shading * sampled * 255, batch.supersample)
    lit = before * batch.gain[:, :, None, None]
    grey = lit.mean(dim=1, keepdim=True)
    image = quantise(grey + batch.saturation[:, None, None, None] * (lit - grey))
    image = apply_optics(image, batch.optics)
    return (quantise(image + batch.noise) / 255).to(texture.dtype)


def apply_optics(images: torch.Tensor, optics: Sequence[Optics]) -> torch.Tensor:
    """Each render's resolution round trip and blur ((N, 3, H, W), 0-255 integers), renders with the
    same optics in one batch."""
    groups: dict[Optics, list[int]] = {}
    for index, key in enumerate(optics):
        groups.setdefault(key, []).append(index)
    pieces: list[torch.Tensor | None] = [None] * images.shape[0]
    for (resize, blur), indices in groups.items():
        group = images[indices]
        height, width = group.shape[-2:]
        passes = []
        if resize is not None:
            passes += resize_passes((width, height), resize) + resize_passes(resize, (width, height))
        if blur > 0:
            radius = box_radius(blur)
            passes += [("x", box_matrix(width, radius))] * 3 + [("y", box_matrix(height, radius))] * 3
        for axis, matrix in passes:
            weights = torch.as_tensor(matrix, dtype=group.dtype, device=group.device)
            group = quantise(group @ weights.T if axis == "x" else weights @ group)
        for position, index in enumerate(indices):
            pieces[index] = group[position]
    return torch.stack(pieces)  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def resize_passes(size_in: tuple[int, int], size_out: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """The two passes of PIL's bilinear resize from (w, h) ``size_in`` to ``size_out``, in the order the
    installed Pillow takes: its C source does the horizontal pass first, but the installed build (13.0)
    sometimes does the vertical one first, so the order is measured once on a random probe image."""
    across = ("x", resize_matrix(size_in[0], size_out[0]))
    down = ("y", resize_matrix(size_in[1], size_out[1]))
    probe = np.random.default_rng(0).integers(0, 256, (size_in[1], size_in[0], 3), dtype=np.uint8)
    truth = np.asarray(Image.fromarray(probe).resize(size_out, Image.BILINEAR), dtype=np.float64)

    def mismatches(order: list[tuple[str, np.ndarray]]) -> int:
        x = probe.astype(np.float64)
        for axis, matrix in order:
            x = np.floor(np.einsum("ij,hjc->hic" if axis == "x" else "ij,jwc->iwc", matrix, x) + 0.5)
        return int(np.count_nonzero(x != truth))

    return min(([across, down], [down, across]), key=mismatches)


@lru_cache(maxsize=64)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """One pass of PIL's bilinear resampling of 8-bit images from ``size_in`` to ``size_out`` samples, as a
    (size_out, size_in) matrix: its triangle filter widened when shrinking, weights normalised and rounded to
    PIL's fixed point (Pillow's Resample.c, ``precompute_coeffs`` and ``normalize_coeffs_8bpc``)."""
    scale = size_in / size_out
    filter_scale = max(scale, 1.0)
    support = 1.0 * filter_scale
    matrix = np.zeros((size_out, size_in))
    for out in range(size_out):
        centre = (out + 0.5) * scale
        low, high = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        taps = np.maximum(1 - np.abs((np.arange(low, high) - centre + 0.5) / filter_scale), 0)
        if taps.sum() != 0:
            taps = taps / taps.sum()
        matrix[out, low:high] = np.floor(taps * (1 << PRECISION_BITS) + 0.5)
    return matrix / (1 << PRECISION_BITS)


def box_radius(sigma: float, passes: int = 3) -> float:
    """The box radius PIL's GaussianBlur uses for ``sigma`` (Gwosdek et al. 2011), in its float32 arithmetic."""
    sigma2 = np.float32(np.float32(sigma) * np.float32(sigma) / np.float32(passes))
    length = np.float32(np.sqrt(12.0 * np.float64(sigma2) + 1.0))
    whole = np.float32(np.floor((np.float64(length) - 1.0) / 2.0))
    fraction = np.float32((2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2))
    fraction = np.float32(fraction / np.float32(6 * (sigma2 - (whole + 1) * (whole + 1))))
    return float(np.float32(whole + fraction))


@lru_cache(maxsize=64)
def box_matrix(size: int, radius: float) -> np.ndarray:
    """One pass of PIL's box blur of fractional ``radius`` along ``size`` samples, edges repeated: (size, size)."""
    whole = int(radius)
    inner = int(np.float32(1 << 24) / (np.float32(radius) * 2 + 1))  # PIL's 24-bit weights
    outer = ((1 << 24) - (whole * 2 + 1) * inner) // 2
    matrix = np.zeros((size, size))
    for x in range(size):
        for k in range(-whole - 1, whole + 2):
            matrix[x, min(max(x + k, 0), size - 1)] += (inner if abs(k) <= whole else outer) / (1 << 24)
    return matrix
