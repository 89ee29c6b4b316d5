"""A printed pattern on the top: the texture, where it sits on the torso, its sampling, and the per-pixel
record of where it shows (what the torch compositor needs to redraw it)."""

# The print is an RGB image stretched over a rectangle of body coordinates on the torso, on the
# front and on the back (side views show the flank in the top's own colours). Its columns run
# left to right as the camera sees them on either side, so a print reads the right way round on
# the chest and on the back. Sampling is bilinear with border padding, the same arithmetic as
# ``torch.nn.functional.grid_sample(align_corners=False, padding_mode="border")``.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metricattack.errors import InputError

Area = tuple[float, float, float, float]  # (u0, u1, v0, v1) in body units; u as seen by the camera
AREAS: dict[str, Area] = {
    "patch": (-0.07, 0.07, 0.2, 0.4),  # a patch on the chest and on the back
    "top": (-0.13, 0.13, 0.16, 0.54),  # the whole torso of the top, for any build
}


@dataclass(frozen=True, eq=False)
class Texture:
    """A print: ``image`` (h, w, 3) in [0, 1], row 0 at the top, stretched over ``area`` (u0, u1, v0, v1);
    an empty area (u1 <= u0 or v1 <= v0) prints nothing."""

    image: np.ndarray
    area: Area = AREAS["patch"]

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise InputError(f"texture: expected an RGB image of shape (h, w, 3), got shape {image.shape}")
        if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
            raise InputError("texture: pixel values must be finite and in [0, 1]")
        if len(self.area) != 4:
            raise InputError(f"texture: area must be (u0, u1, v0, v1), got {self.area}")
        object.__setattr__(self, "image", image.astype(np.float32))

    @property
    def empty(self) -> bool:
        """True when the area is empty: nothing is printed."""
        u0, u1, v0, v1 = self.area
        return not (u1 > u0 and v1 > v0)


def sample(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (h, w, C) at ``grid`` (..., 2) = (x, y) in [-1, 1], border padding,
    as grid_sample with align_corners=False. Returns (..., C) float32."""
    h, w = image.shape[:2]
    x = np.clip(((grid[..., 0] + 1) * w - 1) / 2, 0, w - 1)
    y = np.clip(((grid[..., 1] + 1) * h - 1) / 2, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


class PrintedTop:
    """The top's colour with the print over its area: a function of body coordinates (U (1, w), V (h, 1))
    like any colour of the canvas, that can also say where and at which texture point it samples."""

    def __init__(self, base: Callable[[np.ndarray, np.ndarray], np.ndarray], texture: Texture, facing: int):
        self.base, self.texture, self.facing = base, texture, facing

    def locate(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the print is (h, w) and the grid_sample point of each pixel (h, w, 2) float32."""
        shape = (v.shape[0], u.shape[1])
        across = self.facing * u  # as the camera sees it: the print is never mirrored
        u0, u1, v0, v1 = self.texture.area
        inside = np.broadcast_to((across >= u0) & (across <= u1) & (v >= v0) & (v <= v1), shape)
        grid = np.zeros((*shape, 2), dtype=np.float32)
        if self.texture.empty:
            return inside & False, grid
        grid[..., 0] = 2 * (across - u0) / (u1 - u0) - 1
        grid[..., 1] = 2 * (v - v0) / (v1 - v0) - 1
        return inside, grid

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        rgb = self.base(u, v)
        inside, grid = self.locate(u, v)
        if inside.any():
            rgb[inside] = sample(self.texture.image, grid[inside]) * 255
        return rgb


class TextureLayer:
    """Per supersampled pixel: where the print shows at the end (every later paint covers it), its
    grid_sample point and its shading, so that pixel = 255 * shading * T(grid)."""

    def __init__(self, height: int, width: int):
        self.grid = np.zeros((height, width, 2), dtype=np.float32)
        self.shading = np.zeros((height, width), dtype=np.float32)
        self.covered = np.zeros((height, width), dtype=bool)

    def record(self, where: tuple[slice, slice], mask: np.ndarray, colour: object, shading: np.ndarray, u, v) -> None:
        """A paint of ``colour`` with ``shading`` (h, w) where ``mask`` (h, w): the print shows where it paints it."""
        self.covered[where][mask] = False
        if isinstance(colour, PrintedTop):
            inside, grid = colour.locate(u, v)
            printed = mask & inside
            self.covered[where][printed] = True
            self.grid[where][printed] = grid[printed]
            self.shading[where][printed] = shading[printed]

    def cover(self, where: tuple[slice, slice]) -> None:
        """Something opaque painted over ``where``."""
        self.covered[where] = False

    def darken(self, where: tuple[slice, slice], factor: np.ndarray) -> None:
        """The pixels of ``where`` were multiplied by ``factor`` (h, w)."""
        self.shading[where] *= factor


@dataclass(frozen=True, eq=False)
class PrintScene:
    """What one render holds for redrawing its print: the supersampled print points and shading, the
    rest of the image before the camera, and the camera's steps after the person is drawn (render.py).

    grid: (H*s, W*s, 2) float32, grid_sample point of each supersampled pixel;
    shading: (H*s, W*s) float32, the print's shading where it shows, 0 elsewhere;
    rest: (H, W, 3) float32, 0-255, the downsampled image before the camera with the print's pixels black;
    gain: (3,) per-channel factor (light flicker, camera gain, white balance); saturation: around the grey;
    resize: (w, h) of the camera's resolution round trip, or None; blur: Gaussian radius in pixels, 0: none;
    noise: (H, W, 3) float32, 0-255, the sensor noise added last; supersample: s.
    """

    grid: np.ndarray
    shading: np.ndarray
    rest: np.ndarray
    gain: np.ndarray
    saturation: float
    resize: tuple[int, int] | None
    blur: float
    noise: np.ndarray
    supersample: int

    @property
    def coverage(self) -> np.ndarray:
        """(H, W): the fraction of each output pixel covered by the print."""
        s = self.supersample
        covered = (self.shading > 0).astype(np.float32)
        return covered.reshape(covered.shape[0] // s, s, covered.shape[1] // s, s).mean(axis=(1, 3))
