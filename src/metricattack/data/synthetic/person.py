"""Drawing a pedestrian on a canvas: body, clothes and their patterns, hair, bags, with gait and pose jitter."""

from __future__ import annotations

import numpy as np

from metricattack.data.synthetic.canvas import Canvas, Colour, Point
from metricattack.data.synthetic.identities import Appearance
from metricattack.data.synthetic.texture import PrintedTop, Texture


def top_colour(look: Appearance, view: str, sleeve: bool = False) -> Colour:
    """The top's colour as a function of body coordinates: its pattern, seen from ``view``."""
    base, second, scale = look.top, look.top_second, look.pattern_scale

    def paint(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        shape = (v.shape[0], u.shape[1])
        if look.pattern == "stripes":
            on = np.floor(v * scale) % 2 == 0
        elif look.pattern == "checks":
            on = (np.floor(v * scale * 0.8) + np.floor((u + 1) * scale * 0.8)) % 2 == 0
        elif look.pattern == "logo" and view == "front" and not sleeve:
            on = ((u / 0.045) ** 2 + ((v - 0.28) / 0.04) ** 2) <= 1
        elif look.pattern == "jacket" and view == "front" and not sleeve:
            on = np.abs(u) < 0.032
        elif look.pattern == "twotone":
            on = v < 0.29
        else:
            on = np.zeros(shape, dtype=bool)
        return np.where(np.broadcast_to(on, shape)[..., None], second, base).astype(np.float32)

    return paint


def render_person(
    canvas: Canvas, look: Appearance, view: str, rng: np.random.Generator, texture: Texture | None = None
) -> None:
    """Draw a pedestrian in ``view`` (front, back, side facing +u) with gait and pose jitter; ``texture``
    is printed on the torso of the top in front and back views."""
    side = view == "side"
    build = look.build
    phase = rng.uniform(0, 2 * np.pi)
    stride = rng.uniform(0.22, 0.42)  # leg swing amplitude, radians
    skin, bottom, shoes = look.skin, look.bottom, look.shoes
    top = top_colour(look, view)
    if texture is not None and not side:
        top = PrintedTop(top, texture, canvas.facing)
    sleeve = top_colour(look, view, sleeve=True)
    hip_v, thigh, shin = 0.5, 0.225, 0.235
    thigh_r, shin_r = 0.042 * build, 0.034 * build
    shoulder_v = 0.19
    shoulder_u = 0.02 if side else 0.092 * build
    bag_u = look.bag_side * (1 if view == "back" else -1)  # where the bag shows across the image
    shadow_box = canvas.window(-0.2, 0.2, 0.96, 1.04)
    if shadow_box is not None:  # a soft shadow on the ground
        where, u, v = shadow_box
        d2 = (u / 0.2) ** 2 + ((v - 1.0) / 0.035) ** 2
        canvas.darken(where, np.where(d2 <= 1, 0.7 + 0.3 * d2, 1.0))

    def leg(hip_u: float, swing: float, lift: float, dim: float) -> None:
        knee = (hip_u + thigh * np.sin(swing), hip_v + thigh * np.cos(swing) - lift)
        bend = 0.1 + (0.8 * max(0.0, -swing) if side else 0.0)
        ankle = (knee[0] + shin * np.sin(swing - bend), knee[1] + shin * np.cos(swing - bend) - lift * 0.5)
        trousers = look.bottom_kind == "trousers"
        canvas.capsule((hip_u, hip_v), knee, thigh_r, bottom if trousers else skin, dim)
        canvas.capsule(knee, ankle, shin_r, bottom if trousers else skin, dim)
        if look.bottom_kind == "shorts":
            end = (hip_u + 0.7 * (knee[0] - hip_u), hip_v + 0.7 * (knee[1] - hip_v))
            canvas.capsule((hip_u, hip_v), end, thigh_r + 0.008, bottom, dim)
        forward = 0.022 if side else 0.0
        canvas.ellipse(ankle[0] + forward, ankle[1] + 0.018, 0.055 if side else 0.034, 0.024, shoes, dim * 0.9)

    def arm(shoulder: Point, swing: float, out: float, dim: float) -> None:
        if side:
            elbow = (shoulder[0] + 0.16 * np.sin(swing), shoulder[1] + 0.16 * np.cos(swing))
            fore = swing + 0.25 + 0.3 * max(0.0, swing)
            wrist = (elbow[0] + 0.145 * np.sin(fore), elbow[1] + 0.145 * np.cos(fore))
        else:  # seen from the front or back a swing only foreshortens the arm
            elbow = (shoulder[0] + out * 0.03, shoulder[1] + 0.16 * np.cos(swing))
            wrist = (elbow[0] + out * 0.012, elbow[1] + 0.145 * np.cos(swing * 1.5))
        canvas.capsule(shoulder, elbow, 0.03 * build, skin, dim)
        canvas.capsule(elbow, wrist, 0.025 * build, skin, dim)
        if look.long_sleeves:
            canvas.capsule(shoulder, elbow, 0.031 * build, sleeve, dim * 0.95)
            canvas.capsule(elbow, wrist, 0.027 * build, sleeve, dim * 0.95)
        else:
            mid = (shoulder[0] + 0.55 * (elbow[0] - shoulder[0]), shoulder[1] + 0.55 * (elbow[1] - shoulder[1]))
            canvas.capsule(shoulder, mid, 0.034 * build, sleeve, dim * 0.95)
        canvas.ellipse(wrist[0], wrist[1] + 0.014, 0.022, 0.026, skin, dim)

    def torso() -> None:
        if side:
            widths = ((0.17, 0.05), (0.3, 0.058), (0.42, 0.05), (0.53, 0.056))
            canvas.band(0.008, 0.165, 0.53, tuple((v, w * build) for v, w in widths), top)
        else:
            widths = ((0.17, 0.1), (0.3, 0.092), (0.42, 0.08), (0.53, 0.088))
            canvas.band(0.0, 0.165, 0.53, tuple((v, w * build) for v, w in widths), top)

    def lower_body() -> None:
        if look.bottom_kind == "skirt":
            widths = ((0.47, 0.08), (0.67, 0.12)) if not side else ((0.47, 0.056), (0.67, 0.1))
            canvas.band(0.0, 0.46, 0.67, tuple((v, w * build) for v, w in widths), bottom)
        else:
            canvas.box(0.0, 0.51, (0.055 if side else 0.085) * build, 0.05, bottom, 0.02)

    def head() -> None:
        canvas.capsule((0.0, 0.12), (0.0, 0.18), 0.022, skin)
        hair = look.hair if look.hat is None or look.hair_style == "long" else look.hat
        if look.hair_style == "long" and side:
            canvas.box(-0.012, 0.15, 0.05, 0.09, look.hair, 0.03)
        face_u = 0.014 if side else 0.0
        if view == "back":
            canvas.ellipse(0.0, 0.075, 0.053, 0.07, look.hair if look.hair_style != "shaved" else skin * 0.85)
            if look.hair_style == "long":
                canvas.box(0.0, 0.16, 0.056, 0.09, look.hair, 0.04)
        else:
            canvas.ellipse(0.0, 0.075, 0.055, 0.07, hair if look.hair_style != "shaved" else skin * 0.9)
            canvas.ellipse(face_u, 0.088, 0.048 if not side else 0.044, 0.058, skin)
            if view == "front":
                for eye in (-0.018, 0.018):
                    canvas.ellipse(eye, 0.082, 0.007, 0.006, skin * 0.35)
            else:
                canvas.ellipse(0.05, 0.082, 0.005, 0.006, skin * 0.35)
        if look.hair_style == "shaved" and look.hat is None:
            canvas.ellipse(0.0, 0.07, 0.054, 0.066, look.hair, clip=lambda u, v: v < 0.04)
        if look.hat is not None:
            canvas.ellipse(0.0, 0.06, 0.058, 0.058, look.hat, clip=lambda u, v: v < 0.055)
            if view != "back":
                canvas.box(0.04 if side else 0.0, 0.052, 0.05 if side else 0.06, 0.008, look.hat, 0.0, 0.85)

    def backpack_or_bag(behind: bool) -> None:
        if look.backpack is not None:
            if view == "back" and not behind:
                canvas.box(0.0, 0.32, 0.075 * build, 0.13, look.backpack, 0.03)
                canvas.box(0.0, 0.38, 0.05 * build, 0.045, look.backpack * 0.8, 0.02)
            elif side and not behind:
                canvas.box(-0.075 * build, 0.31, 0.04, 0.13, look.backpack, 0.02)
            elif view == "front" and not behind:
                for strap in (-0.055, 0.055):
                    canvas.capsule((strap * build, 0.17), (strap * build * 1.1, 0.34), 0.011, look.backpack * 0.85)
        if look.bag is not None:
            if not side and not behind:
                canvas.capsule((-bag_u * 0.07 * build, 0.18), (bag_u * 0.1 * build, 0.45), 0.008, look.bag * 0.7)
                canvas.box(bag_u * 0.13 * build, 0.5, 0.045, 0.05, look.bag, 0.015)
            elif side and behind == (look.bag_side == canvas.facing):
                canvas.box(0.0, 0.49, 0.055, 0.05, look.bag, 0.015, 1.0 if not behind else 0.8)

    swing = stride * np.sin(phase)
    if side:
        arm((shoulder_u - 0.01, shoulder_v), swing * 0.8, 0, 0.78)
        backpack_or_bag(behind=True)
        leg(0.0, -swing, 0.0, 0.8)
        lower_body()
        leg(0.0, swing, 0.0, 1.0)
        if look.bottom_kind == "skirt":
            lower_body()
        torso()
        backpack_or_bag(behind=False)
        head()
        arm((shoulder_u, shoulder_v), -swing * 0.8, 0, 1.0)
    else:
        hip_u = 0.048 * build
        lift = 0.025 * np.sin(phase)
        backpack_or_bag(behind=True)
        if look.hair_style == "long" and view == "front":  # hangs behind the shoulders
            canvas.box(0.0, 0.15, 0.064, 0.09, look.hair, 0.03, 0.8)
        leg(-hip_u, 0.04, max(lift, 0.0), 1.0)
        leg(hip_u, -0.04, max(-lift, 0.0), 1.0)
        lower_body()
        torso()
        for side_sign in (-1, 1):
            arm((side_sign * shoulder_u, shoulder_v + 0.01), swing * side_sign, side_sign, 0.95)
        backpack_or_bag(behind=False)
        head()
