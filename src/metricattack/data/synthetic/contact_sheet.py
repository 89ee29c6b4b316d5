"""A contact sheet: a PNG grid of a tree's training images, identities by cameras."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, ImageDraw

from metricattack.data.base import list_images
from metricattack.system.atomic import atomic_write

NAME_PATTERN = re.compile(r"^([-\d]+)_c(\d)")


def contact_sheet(root: Path, pids: list[int] | None = None, cameras: int = 6, *, out: Path) -> Path:
    """A PNG grid of training images: 8 identities (rows, the first 8 unless ``pids``) x ``cameras``
    (columns), an empty cell where the identity has no image in that camera. Written atomically."""
    images = list_images(Path(root) / "bounding_box_train")
    by_key: dict[tuple[int, int], Path] = {}
    for path in images:
        match = NAME_PATTERN.match(path.name)
        if match:
            by_key.setdefault((int(match.group(1)), int(match.group(2))), path)
    pids = list(pids) if pids is not None else sorted({pid for pid, _ in by_key})[:8]
    with Image.open(images[0]) as first:
        cell_w, cell_h = first.size
    pad, label_w, header_h = 4, 40, 16
    size = (label_w + cameras * (cell_w + pad) + pad, header_h + len(pids) * (cell_h + pad) + pad)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(cameras):
        draw.text((label_w + pad + c * (cell_w + pad) + cell_w // 2 - 6, 2), f"c{c + 1}", fill="black")
    for row, pid in enumerate(pids):
        y = header_h + pad + row * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), f"{pid:04d}", fill="black")
        for c in range(cameras):
            x = label_w + pad + c * (cell_w + pad)
            if (pid, c + 1) in by_key:
                with Image.open(by_key[(pid, c + 1)]) as img:
                    sheet.paste(img.convert("RGB").resize((cell_w, cell_h)), (x, y))
            else:
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=(235, 235, 235))
    return atomic_write(Path(out), lambda tmp: sheet.save(tmp, format="PNG"))
