"""A drawing canvas in body coordinates: capsules, ellipses, boxes and bands, shaded like cylinders."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from metricattack.data.synthetic.texture import TextureLayer

Colour = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]  # RGB, or a function of (U, V)
Point = tuple[float, float]  # (u, v) in body units
Window = tuple[tuple[slice, slice], np.ndarray, np.ndarray]  # pixel slices, U (1, w), V (h, 1)


class Canvas:
    """An RGB float image with a person-centred frame: u across (mirrored by ``facing``), v from the
    head top (0) to the soles (1), both in units of the person's height. ``layer``, if given, records
    where a print shows (canvases drawing into one image share it)."""

    def __init__(
        self,
        pixels: np.ndarray,
        cx: float,
        top: float,
        person_height: float,
        facing: int,
        light: float,
        layer: TextureLayer | None = None,
    ):
        self.pixels = pixels  # (H, W, 3) float32, drawn in place
        self.cx, self.top, self.ph, self.facing, self.light = cx, top, person_height, facing, light
        self.layer = layer

    def window(self, u0: float, u1: float, v0: float, v1: float) -> Window | None:
        """Pixel slices covering a body-unit box, and the body coordinates of their centres: U (1, w), V (h, 1)."""
        h, w = self.pixels.shape[:2]
        xa, xb = self.cx + self.facing * u0 * self.ph, self.cx + self.facing * u1 * self.ph
        x0, x1 = max(int(np.floor(min(xa, xb))), 0), min(int(np.ceil(max(xa, xb))) + 1, w)
        y0, y1 = max(int(np.floor(self.top + v0 * self.ph)), 0), min(int(np.ceil(self.top + v1 * self.ph)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        u = (np.arange(x0, x1, dtype=np.float32) + 0.5 - self.cx) / self.ph * self.facing
        v = (np.arange(y0, y1, dtype=np.float32) + 0.5 - self.top) / self.ph
        return (slice(y0, y1), slice(x0, x1)), u[None, :], v[:, None]

    def fill(self, where: tuple[slice, slice], mask: np.ndarray, colour: Colour, shading: np.ndarray, u, v) -> None:
        """Paint ``colour`` (RGB, or a function of (U, V) giving (h, w, 3)) times ``shading`` where ``mask``."""
        shape = (v.shape[0], u.shape[1])
        if mask.shape != shape:
            mask = np.broadcast_to(mask, shape)
        shading = shading if shading.shape == shape else np.broadcast_to(shading, shape)
        rgb = colour(u, v)[mask] if callable(colour) else colour
        self.pixels[where][mask] = rgb * shading[mask][:, None]
        if self.layer is not None:
            self.layer.record(where, mask, colour, shading, u, v)

    def darken(self, where: tuple[slice, slice], factor: np.ndarray) -> None:
        """Multiply the pixels of ``where`` by ``factor`` (h, w): a shadow."""
        self.pixels[where] *= factor[..., None]
        if self.layer is not None:
            self.layer.darken(where, factor)

    def lit(self, across: np.ndarray) -> np.ndarray:
        """Side lighting: ``across`` in -1..1 is the position across a part, in body units' direction."""
        return 1 + 0.14 * self.light * self.facing * across

    def capsule(self, a: Point, b: Point, radius: float, colour: Colour, dim: float = 1.0) -> None:
        """A limb: the points within ``radius`` of the segment a-b, shaded like a cylinder."""
        u0, u1, v0, v1 = min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1])
        win = self.window(u0 - radius, u1 + radius, v0 - radius, v1 + radius)
        if win is None:
            return
        where, u, v = win
        du, dv = b[0] - a[0], b[1] - a[1]
        t = np.minimum(np.maximum(((u - a[0]) * du + (v - a[1]) * dv) * (1 / max(du * du + dv * dv, 1e-9)), 0), 1)
        pu, pv = u - a[0] - t * du, v - a[1] - t * dv
        d2 = (pu * pu + pv * pv) / (radius * radius)
        self.fill(where, d2 <= 1, colour, dim * (1 - 0.3 * d2) * self.lit(pu / radius), u, v)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, colour: Colour, dim: float = 1.0, clip=None) -> None:
        """An ellipse, shaded like a ball; ``clip(U, V)`` optionally restricts it."""
        win = self.window(cu - ru, cu + ru, cv - rv, cv + rv)
        if win is None:
            return
        where, u, v = win
        d2 = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
        mask = d2 <= 1 if clip is None else (d2 <= 1) & clip(u, v)
        self.fill(where, mask, colour, dim * (1 - 0.25 * d2) * self.lit((u - cu) / ru), u, v)

    def box(
        self, cu: float, cv: float, hu: float, hv: float, colour: Colour, radius: float = 0.0, dim: float = 1.0
    ) -> None:
        """A rectangle (half sizes hu, hv) with rounded corners, shaded across."""
        win = self.window(cu - hu, cu + hu, cv - hv, cv + hv)
        if win is None:
            return
        where, u, v = win
        radius = min(radius, hu, hv)
        du = np.maximum(np.abs(u - cu) - (hu - radius), 0)
        dv = np.maximum(np.abs(v - cv) - (hv - radius), 0)
        across = (u - cu) / hu
        mask = du * du + dv * dv <= radius * radius if radius > 0 else np.ones((v.shape[0], u.shape[1]), dtype=bool)
        self.fill(where, mask, colour, dim * (1 - 0.2 * across * across) * self.lit(across), u, v)

    def band(self, cu: float, v0: float, v1: float, widths: tuple[Point, ...], colour: Colour, dim: float = 1) -> None:
        """A vertical band between v0 and v1 whose half width follows ``widths`` ((v, half width), ...),
        with rounded top corners: a torso or a skirt."""
        vs, hws = np.array([w[0] for w in widths]), np.array([w[1] for w in widths])
        win = self.window(cu - hws.max(), cu + hws.max(), v0, v1)
        if win is None:
            return
        where, u, v = win
        half = np.interp(v, vs, hws).astype(np.float32)
        across = (u - cu) / half
        mask = (np.abs(across) <= 1) & (v >= v0 + 0.04 * np.abs(across) ** 4) & (v <= v1)
        self.fill(where, mask, colour, dim * (1 - 0.25 * across * across) * self.lit(across), u, v)
